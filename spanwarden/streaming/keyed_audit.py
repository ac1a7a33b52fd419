"""Audit entries made by a worker, held with idempotence keys until they are sent to the audit topic.

A worker cannot append to the hash chain itself (there is one chain and many workers), so it names each
entry by where it came from — agent, source message, position within it — and the gateway, the chain's
single writer, appends each key once: a batch replayed after a crash produces the same keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson

from spanwarden.enforcers.audit_log import AgentRef, AuditEntry

KEY_FIELD = "idempotence_key"


class KeyedAuditBuffer:
    """An `AuditSink` that collects unsealed entries under the key prefix set for the current input."""

    def __init__(self) -> None:
        self.prefix = ""
        self.entries: list[AuditEntry] = []
        self._counter = 0

    def start(self, prefix: str) -> None:
        """Name the input whose entries follow (e.g. ``agent/partition/offset``)."""
        self.prefix = prefix
        self._counter = 0

    def append(self, kind: str, agent: AgentRef, actor: str, reason: str, time_s: float,
               evidence: tuple[str, ...] = (), policy_version: str = "",
               data: dict[str, Any] | None = None) -> AuditEntry:
        key = f"{self.prefix}/{self._counter}"
        self._counter += 1
        entry = AuditEntry(0, time_s, kind, agent, actor, reason, tuple(evidence), policy_version,
                           {**(data or {}), KEY_FIELD: key}, "")
        self.entries.append(entry)
        return entry

    def drain(self) -> list[AuditEntry]:
        out, self.entries = self.entries, []
        return out


def encode_entry(entry: AuditEntry) -> bytes:
    return orjson.dumps({"time_s": entry.time_s, "kind": entry.kind, "agent": asdict(entry.agent),
                         "actor": entry.actor, "reason": entry.reason, "evidence": list(entry.evidence),
                         "policy_version": entry.policy_version, "data": entry.data})


def decode_entry(payload: bytes) -> dict[str, Any]:
    """The fields `AuditLog.append` takes; ValueError when the message is not an audit entry."""
    try:
        doc = orjson.loads(payload)
        return {"kind": str(doc["kind"]), "agent": AgentRef(**doc["agent"]), "actor": str(doc["actor"]),
                "reason": str(doc["reason"]), "time_s": float(doc["time_s"]), "evidence": tuple(doc["evidence"]),
                "policy_version": str(doc["policy_version"]), "data": dict(doc["data"])}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed audit message: {exc}") from exc
