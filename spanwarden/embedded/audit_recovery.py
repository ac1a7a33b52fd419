"""What the audit log holds that the snapshot may not: every human's and the policy's decisions, and every
answered access request. A restart puts back those newer than the last snapshot (it is written every few
seconds; a crash loses what came since), and all of them when the snapshot was unreadable and set aside —
an approval a human gave is not a learned baseline, and must not be asked for again because the service
lost its state. One pass over the log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from spanwarden.enforcers.access_requests import APPROVED, DENIED, PENDING, AccessRequest
from spanwarden.enforcers.audit_log import AuditEntry, read_entries
from spanwarden.enforcers.decision import Decision

log = logging.getLogger(__name__)
HUMAN = "human:"


@dataclass
class Recovered:
    decisions: list[Decision] = field(default_factory=list)  # the newest per agent and scope, oldest first
    answers: list[AccessRequest] = field(default_factory=list)  # answered access requests, in answer order


def recover(path: Path) -> Recovered:
    newest: dict[tuple[str, str], Decision] = {}
    opened: dict[str, AccessRequest] = {}
    answers: dict[str, AccessRequest] = {}
    if not path.exists():
        return Recovered()
    for _, entry in read_entries(path):
        if isinstance(entry, Exception):
            continue
        if entry.kind == "decision":
            try:
                decision = Decision.from_dict(entry.data)
            except (KeyError, TypeError, ValueError):
                log.warning("audit entry %s holds no readable decision", entry.seq)
                continue
            key = (decision.agent_id, decision.scope)
            held = newest.get(key)
            if held is None or decision.version > held.version:
                newest[key] = decision
        elif entry.kind == "approval" and entry.data.get("kind") == "access":
            _access(entry, opened, answers)
    return Recovered(sorted(newest.values(), key=lambda d: d.version), list(answers.values()))


def _access(entry: AuditEntry, opened: dict[str, AccessRequest], answers: dict[str, AccessRequest]) -> None:
    data = entry.data
    request_id, resource, status = str(data.get("request_id", "")), str(data.get("resource", "")), data.get(
        "status")
    if not request_id or not resource:
        return
    if status == PENDING:
        opened[request_id] = AccessRequest(request_id, entry.agent.id, resource, entry.time_s,
                                           entry.reason.partition(" requested: ")[2] or entry.reason)
        return
    if status not in (APPROVED, DENIED):
        return
    asked = opened.get(request_id) or AccessRequest(request_id, entry.agent.id, resource, entry.time_s, "")
    until = data.get("until_s")
    answers.pop(request_id, None)  # one answer per request; a newer one (none should exist) wins, in its place
    answers[request_id] = AccessRequest(
        request_id, asked.agent_id, resource, asked.opened_s, asked.reason, str(status),
        entry.actor.removeprefix(HUMAN), entry.time_s, float(until) if until is not None else None,
        entry.reason.partition(f" {status}: ")[2])
