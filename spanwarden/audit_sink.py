"""Where the pipeline writes audit entries: the file-backed `AuditLog`, or memory for tests and benches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from spanwarden.enforcers.audit_log import GENESIS, AgentRef, AuditEntry, entry_hash


class AuditSink(Protocol):
    def append(self, kind: str, agent: AgentRef, actor: str, reason: str, time_s: float,
               evidence: tuple[str, ...] = (), policy_version: str = "",
               data: dict[str, Any] | None = None) -> AuditEntry: ...


class MemoryAuditSink:
    """Keeps chained entries in a list (the same hashing as the file log, without the file)."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def append(self, kind: str, agent: AgentRef, actor: str, reason: str, time_s: float,
               evidence: tuple[str, ...] = (), policy_version: str = "",
               data: dict[str, Any] | None = None) -> AuditEntry:
        prev = self.entries[-1].hash if self.entries else GENESIS
        entry = AuditEntry(len(self.entries) + 1, time_s, kind, agent, actor, reason, tuple(evidence),
                           policy_version, data or {}, prev)
        sealed = AuditEntry(entry.seq, time_s, kind, agent, actor, reason, tuple(evidence), policy_version,
                            data or {}, prev, entry_hash(entry.body(), None))
        self.entries.append(sealed)
        return sealed


class TeeAuditSink:
    """Appends to `inner`, then hands each sealed entry to `listener` (the Datadog logs, say)."""

    def __init__(self, inner: AuditSink, listener: Callable[[AuditEntry], None]) -> None:
        self.inner = inner
        self.listener = listener

    def append(self, kind: str, agent: AgentRef, actor: str, reason: str, time_s: float,
               evidence: tuple[str, ...] = (), policy_version: str = "",
               data: dict[str, Any] | None = None) -> AuditEntry:
        entry = self.inner.append(kind, agent, actor, reason, time_s, evidence, policy_version, data)
        self.listener(entry)
        return entry
