"""A notice: one thing a person should hear about now, or hear is over (`resolved`), made from the audit
entry that records it. Pure: `from_entry` holds no state; `Tracker` remembers what was triggered, so that
only those are resolved."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from spanwarden.enforcers.audit_log import AgentRef, AuditEntry

APPROVAL, ACCESS, HALT, BUDGET = "approval_request", "access_request", "halt", "budget_warning"
KINDS = (APPROVAL, ACCESS, HALT, BUDGET)
BUDGET_FINDINGS = {"budget_projection", "budget_exceeded", "team_budget_exceeded"}


@dataclass(frozen=True)
class Notice:
    kind: str  # one of KINDS
    key: str  # the same for a trigger and its resolve ("approval:ap-3", "halt:billing-bot")
    agent: AgentRef
    title: str
    text: str
    severity: str  # critical | warning | info (PagerDuty's words)
    time_s: float
    resolved: bool = False
    path: str = ""  # the console page it concerns, e.g. "/approvals/ap-3" (a link needs the console's URL)
    expires_s: float | None = None  # when a link to it stops making sense
    details: dict[str, Any] = field(default_factory=dict)


def agent_page(agent_id: str) -> str:
    """The console's page of an agent (spanwarden/console/; agent ids come from spans: quoted)."""
    return "/agents/" + quote(agent_id, safe="")


def _approval(entry: AuditEntry) -> Notice | None:
    data, agent = entry.data, entry.agent
    status = str(data.get("status", ""))
    if data.get("kind") == "access":
        request_id, what = str(data.get("request_id", "")), f"access to {data.get('resource', '?')}"
        kind, path = ACCESS, f"/access-requests/{request_id}"
    else:
        request_id = str(data.get("id", ""))
        what = (f"{data['summary']} ({data.get('resource') or '?'})" if data.get("summary")
                else f"a call of {data.get('tool', '?')}")
        kind, path = APPROVAL, f"/approvals/{request_id}"
    if not request_id:
        return None
    base: dict[str, Any] = dict(kind=kind, key=f"{kind}:{request_id}", agent=agent, time_s=entry.time_s, path=path,
                details={"request_id": request_id, "status": status, "owner": agent.owner,
                         "environment": agent.environment, "team": agent.team})
    if status == "pending":
        expires = data.get("expires_s")
        return Notice(**base, title=f"{agent.id} waits for approval: {what}",
                      text=f"{entry.reason}. Owner: {agent.owner or 'unknown'}. Answer with `spanwarden approve "
                           f"{request_id}` or `spanwarden deny {request_id} --reason ...`.",
                      severity="warning", expires_s=float(expires) if expires else None)
    return Notice(**base, title=f"{agent.id}: {what} {status}", text=f"{entry.reason} (by {entry.actor})",
                  severity="info", resolved=True)


def _decision(entry: AuditEntry) -> Notice | None:
    data, agent = entry.data, entry.agent
    if data.get("scope"):
        return None  # a scoped decision (one tool, model or resource) is not the agent halted
    action = str(data.get("action", ""))
    base: dict[str, Any] = dict(
        kind=HALT, key=f"{HALT}:{agent.id}", agent=agent, time_s=entry.time_s, path=agent_page(agent.id),
        details={"decided_by": entry.actor, "version": data.get("version"), "owner": agent.owner,
                 "environment": agent.environment, "team": agent.team, "findings": list(data.get("findings", []))})
    if action == "halt":
        return Notice(**base, title=f"{agent.id} halted by {entry.actor}",
                      text=f"{entry.reason}. Owner: {agent.owner or 'unknown'}. Its calls are refused until "
                           f"`spanwarden resume {agent.id}`.", severity="critical")
    if action in ("allow", "warn", "throttle"):
        return Notice(**base, title=f"{agent.id} no longer halted ({action} by {entry.actor})", text=entry.reason,
                      severity="info", resolved=True)
    return None


def _finding(entry: AuditEntry) -> Notice | None:
    data, agent = entry.data, entry.agent
    if data.get("kind") not in BUDGET_FINDINGS or data.get("severity") == "info":
        return None
    return Notice(kind=BUDGET, key=f"{BUDGET}:{agent.id}:{data['kind']}", agent=agent, time_s=entry.time_s,
                  title=f"{agent.id}: {str(data['kind']).replace('_', ' ')}", text=entry.reason,
                  severity="critical" if data.get("severity") == "critical" else "warning",
                  path=agent_page(agent.id), details={"observed": data.get("observed"),
                                                        "baseline": data.get("baseline"), "owner": agent.owner})


def from_entry(entry: AuditEntry) -> Notice | None:
    """The notice an audit entry calls for, if any."""
    if entry.kind == "approval":
        return _approval(entry)
    if entry.kind == "decision":
        return _decision(entry)
    if entry.kind == "finding":
        return _finding(entry)
    return None


class Tracker:
    """Passes triggers (a repeat of one still open only after `repeat_after_s`), and resolves only for keys it
    passed a trigger for (an agent allowed after a warning was never halted: nobody needs to hear it is "no
    longer halted"). Bounded."""

    def __init__(self, max_open: int = 10_000, repeat_after_s: float = 1800.0) -> None:
        self.open: OrderedDict[str, float] = OrderedDict()
        self.max_open = max_open
        self.repeat_after_s = repeat_after_s  # a trigger for a key still open is sent again only after this

    def admit(self, notice: Notice | None) -> Notice | None:
        if notice is None:
            return None
        if notice.resolved:
            return notice if self.open.pop(notice.key, None) is not None else None
        last = self.open.get(notice.key)
        if last is not None and notice.time_s - last < self.repeat_after_s:
            return None
        self.open[notice.key] = notice.time_s
        self.open.move_to_end(notice.key)
        while len(self.open) > self.max_open:
            self.open.popitem(last=False)
        return notice
