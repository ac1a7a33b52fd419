"""Who may do what: bearer tokens mapped to named principals with roles, from a tokens file that stores
only SHA-256 digests of the tokens.

Roles, each including the ones before it: `viewer` (status, decisions), `oncall` (kill, throttle, resume,
approve, deny), `admin` (policy reload, audit acknowledgement). An `agent` principal speaks for its own
agents only — reports their spans, takes their spend leases, asks approvals for their tool calls
(`collector/ingest_auth.py`) — and can never command, and so never resume itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import yaml


class Role(IntEnum):
    AGENT = 0
    VIEWER = 1
    ONCALL = 2
    ADMIN = 3


REQUIRED = {"status": Role.VIEWER, "kill": Role.ONCALL, "throttle": Role.ONCALL, "resume": Role.ONCALL,
            "warn": Role.ONCALL, "approve": Role.ONCALL, "deny": Role.ONCALL, "policy_reload": Role.ADMIN,
            "audit_acknowledge": Role.ADMIN, "profile_pin": Role.ADMIN}


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    agents: tuple[str, ...] = ()  # for agent principals: the agent ids it speaks for

    @property
    def actor(self) -> str:
        return f"{'agent' if self.role is Role.AGENT else 'human'}:{self.name}"

    def may(self, action: str) -> bool:
        return self.role is not Role.AGENT and self.role >= REQUIRED[action]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self._by_digest = principals

    def authenticate(self, authorization: str) -> Principal | None:
        """The principal behind an `Authorization: Bearer ...` header, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        supplied = digest(token.strip())
        for known, principal in self._by_digest.items():  # compare all: no early exit on a near match
            if hmac.compare_digest(known, supplied):
                return principal
        return None

    @classmethod
    def load(cls, path: Path | None, admin_token: str | None = None) -> TokenBook:
        principals: dict[str, Principal] = {}
        if admin_token:
            principals[digest(admin_token)] = Principal("admin", Role.ADMIN)
        if path is None or not Path(path).exists():
            return cls(principals)
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TokenFileError(f"cannot read tokens file {path}: {exc}") from exc
        for i, entry in enumerate(doc.get("tokens") or []):
            where = f"{path}: tokens.{i}"
            try:
                role = Role[str(entry["role"]).upper()]
                name = str(entry["name"])
                hashed = str(entry["sha256"]).lower()
            except (KeyError, TypeError) as exc:
                raise TokenFileError(f"{where}: needs name, role (agent, viewer, oncall, admin) and sha256") \
                    from exc
            if len(hashed) != 64:
                raise TokenFileError(f"{where}: sha256 must be 64 hex digits")
            principals[hashed] = Principal(name, role, tuple(entry.get("agents") or ()))
        return cls(principals)


def add_token(path: Path, name: str, role: Role, agents: tuple[str, ...] = ()) -> str:
    """Create a token for `name`, store its digest in the tokens file, and return the token (shown once)."""
    token = secrets.token_urlsafe(32)
    doc = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    entry: dict[str, object] = {"name": name, "role": role.name.lower(), "sha256": digest(token)}
    if agents:
        entry["agents"] = list(agents)
    doc.setdefault("tokens", []).append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return token
