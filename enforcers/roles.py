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
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import yaml

log = logging.getLogger("spanwarden.tokens")
# The service admin token's principal: no named token may take this name, so that an audit actor
# `human:admin` is always the service admin token.
ADMIN_NAME = "admin"
RESERVED_NAMES = frozenset({ADMIN_NAME, "unauthenticated"})
RECHECK_S = 1.0  # how often, at most, `authenticate` looks whether the tokens file changed


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
    """The principals behind the tokens. A book loaded from a file (`load`) picks up the file's changes
    while the service runs: `authenticate` looks at the file's mtime at most once every `RECHECK_S`
    seconds and reads it again when it changed (`spanwarden token add` works without a restart); a file
    that has become unreadable or invalid is logged and the tokens read last stay in force."""

    def __init__(self, principals: dict[str, Principal], path: Path | None = None,
                 admin_token: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_digest = principals
        self._path = Path(path) if path is not None else None
        self._admin_token = admin_token
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = _signature(self._path)
        self._checked = clock()

    def authenticate(self, authorization: str) -> Principal | None:
        """The principal behind an `Authorization: Bearer ...` header, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        self.refresh()
        supplied = digest(token.strip())
        found = None
        for known, principal in self._by_digest.items():  # compare all: no early exit on a near match
            if hmac.compare_digest(known, supplied):
                found = principal
        return found

    def refresh(self, force: bool = False) -> bool:
        """Read the tokens file again if it changed since it was read (looked at once a `RECHECK_S` at
        most, unless `force`); True when the book changed."""
        if self._path is None:
            return False
        now = self._clock()
        if not force and now - self._checked < RECHECK_S:
            return False
        with self._lock:
            self._checked = now
            seen = _signature(self._path)
            if seen == self._seen:
                return False
            try:
                principals = _read(self._path, self._admin_token)
            except TokenFileError as exc:
                log.error("tokens file changed but cannot be used (the tokens read before stay in force): %s",
                          exc)
                self._seen = seen
                return False
            self._by_digest, self._seen = principals, seen
        log.info("tokens file %s read again: %d tokens", self._path, len(principals))
        return True

    @classmethod
    def load(cls, path: Path | None, admin_token: str | None = None) -> TokenBook:
        return cls(_read(path, admin_token), path, admin_token)


def _signature(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a changed tokens file (None when there is none)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _read(path: Path | None, admin_token: str | None) -> dict[str, Principal]:
    principals: dict[str, Principal] = {}
    if admin_token:
        principals[digest(admin_token)] = Principal(ADMIN_NAME, Role.ADMIN)
    if path is None or not Path(path).exists():
        return principals
    names: dict[str, int] = {}
    for i, entry in enumerate(_entries(Path(path))):
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
        if name in RESERVED_NAMES:
            raise TokenFileError(f"{where}: the name {name!r} is reserved (the service's own); rename the entry")
        if name in names:
            raise TokenFileError(f"{where}: the name {name!r} is already used by tokens.{names[name]}; "
                                 "names must be unique (audit entries name the token); rename or remove one")
        names[name] = i
        agents = entry.get("agents") or ()
        agents = [agents] if isinstance(agents, str) else agents
        if not isinstance(agents, list | tuple):
            raise TokenFileError(f"{where}: agents must be a list of agent ids")
        principals[hashed] = Principal(name, role, tuple(str(a) for a in agents))
    return principals


def _entries(path: Path) -> list[dict[str, object]]:
    return list(_document(path).get("tokens") or [])


def _document(path: Path) -> dict[str, list[dict[str, object]]]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TokenFileError(f"cannot read tokens file {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tokens") or [], list):
        raise TokenFileError(f"tokens file {path}: expected a mapping with a list under 'tokens'")
    return doc


def add_token(path: Path, name: str, role: Role, agents: tuple[str, ...] = (), replace: bool = False) -> str:
    """Create a token for `name`, store its digest in the tokens file, and return the token (shown once).
    Names are unique and `RESERVED_NAMES` are refused (`TokenFileError`); with `replace`, a token already
    named `name` is dropped for the new one."""
    if not name.strip() or name != name.strip() or not name.isprintable():
        raise TokenFileError(f"token name {name!r}: use printable characters, no leading or trailing space")
    if name in RESERVED_NAMES:
        raise TokenFileError(f"token name {name!r} is reserved (the service's own admin token is "
                             f"recorded as human:{ADMIN_NAME}); choose another name")
    doc = _document(path) if path.exists() else {}
    entries = list(doc.get("tokens") or [])
    if not replace and any(isinstance(e, dict) and str(e.get("name")) == name for e in entries):
        raise TokenFileError(f"a token named {name!r} already exists in {path}; choose another name "
                             "(or remove that entry from the file first)")
    entries = [e for e in entries if not (isinstance(e, dict) and str(e.get("name")) == name)]
    token = secrets.token_urlsafe(32)
    entry: dict[str, object] = {"name": name, "role": role.name.lower(), "sha256": digest(token)}
    if agents:
        entry["agents"] = list(agents)
    entries.append(entry)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a state dir made here is private too
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(yaml.safe_dump({**doc, "tokens": entries}, sort_keys=False))
    os.replace(tmp, path)
    return token
