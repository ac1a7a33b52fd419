"""The blast-radius report of an incident: from the onset of the agent's first anomaly (or a given time)
until now, every resource it touched (new ones marked), every write and destructive operation (what a
rollback has to undo: resource, operation, rows, statement summary, trace and span ids, who approved it),
its tool calls, models, spend and errors, the decisions made and the humans who acted, with trace ids to
jump to the traces. Built from the spans actually received (the activity journal) and the audit log."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spanwarden.activity_journal import read_activity, read_who
from spanwarden.enforcers.actors import readable
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry
from spanwarden.enforcers.audit_query import entries

ANOMALOUS = ("warning", "critical")
INCIDENT_GAP_S = 1800.0  # anomalies further apart than this are separate incidents
TRACES_PER_RESOURCE = 5


@dataclass
class Onset:
    time_s: float
    reason: str  # the first finding's reason, or "given"


def find_onset(trail: list[AuditEntry]) -> Onset | None:
    """The first warning-or-worse finding of the latest run of them (gaps under INCIDENT_GAP_S)."""
    anomalies = [e for e in trail if e.kind == "finding" and e.data.get("severity") in ANOMALOUS]
    if not anomalies:
        return None
    first = anomalies[-1]
    for earlier in reversed(anomalies[:-1]):
        if first.time_s - earlier.time_s > INCIDENT_GAP_S:
            break
        first = earlier
    return Onset(first.time_s, f"{first.actor}: {first.reason}")


class UnknownAgent(LookupError):
    """Neither the audit log nor the activity journal holds anything about the agent."""


def build(state_dir: Path, agent_id: str, since_s: float | None = None) -> dict[str, Any]:
    trail = list(entries(state_dir / "audit.jsonl", agent=agent_id))
    if not trail and next(iter(read_activity(state_dir / "activity", agent_id)), None) is None:
        raise UnknownAgent(f"neither the audit log nor the activity journal holds anything about {agent_id!r}: "
                           "no agent of that name has reported")
    onset = Onset(since_s, "given") if since_s is not None else find_onset(trail)
    if onset is None:
        raise LookupError(f"no warning or critical finding about {agent_id!r} in the audit log; give --since")
    activity = state_dir / "activity"
    before: set[str] = set()
    history_from: float | None = None
    resources: dict[str, dict[str, Any]] = {}
    tools, errors = Counter[str](), Counter[str]()
    models: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0, "usd": 0.0})
    spans, spend = 0, 0.0
    writes: list[dict[str, Any]] = []
    approvers = _approvers(trail)
    for item in read_activity(activity, agent_id):
        history_from = item["t"] if history_from is None else history_from
        if item["t"] < onset.time_s:
            if item["resource"]:
                before.add(item["resource"])
            continue
        n = int(item.get("n", 1))  # a line of the Kafka gateway's journal stands for n calls
        spans += n
        spend += item["usd"]
        if item["resource"]:
            seen = resources.setdefault(item["resource"], {"calls": 0, "rows": 0, "first_s": item["t"],
                                                           "traces": []})
            seen["calls"] += n
            seen["rows"] += item["rows"]
            if len(seen["traces"]) < TRACES_PER_RESOURCE and item["trace"] and item["trace"] not in seen["traces"]:
                seen["traces"].append(item["trace"])
        if item.get("effect"):
            writes.append(_write(item, approvers))
        if item["tool"]:
            tools[item["tool"]] += n
        if item["model"]:
            models[item["model"]]["calls"] += n
            models[item["model"]]["usd"] += item["usd"]
        if item["error"]:
            errors[item["error"]] += n
    for name, seen in resources.items():
        seen["new"] = name not in before
    acted = [e for e in trail if e.time_s >= onset.time_s and e.kind in ("decision", "command", "approval")]
    who = _who(activity, agent_id, trail)
    return {
        "agent": agent_id, "owner": who.owner, "team": who.team, "environment": who.environment,
        "onset_s": onset.time_s, "onset": onset.reason, "history_from_s": history_from,
        "spans": spans, "spend_usd": round(spend, 6),
        "resources": dict(sorted(resources.items(), key=lambda kv: kv[1]["first_s"])),
        "writes": writes,
        "tools": dict(tools.most_common()), "models": {m: {"calls": int(v["calls"]), "usd": round(v["usd"], 6)}
                                                      for m, v in models.items()},
        "errors": dict(errors.most_common()),
        "actions": [{"time_s": e.time_s, "kind": e.kind, "actor": e.actor, "reason": e.reason,
                     "action": e.data.get("action") or e.data.get("command") or e.data.get("status", "")}
                    for e in acted],
        "humans": sorted({e.actor for e in acted if e.actor.startswith("human:")}),
    }


def _who(activity: Path, agent_id: str, trail: list[AuditEntry]) -> AgentRef:
    """Who the agent is, as status says: what its spans last said (the journal's who-file), else the
    latest audit entry that names it (a command's entry may name the agent only by id)."""
    said = read_who(activity, agent_id)
    named = next((e.agent for e in reversed(trail) if e.agent.owner or e.agent.team or e.agent.environment),
                 AgentRef(agent_id))
    return AgentRef(agent_id, said.get("owner") or named.owner, said.get("team") or named.team,
                    said.get("environment") or named.environment)


def _approvers(trail: list[AuditEntry]) -> dict[str, str]:
    """Approval (and access) request id -> the human who approved it."""
    out: dict[str, str] = {}
    for e in trail:
        if e.kind == "approval" and e.data.get("status") == "approved":
            request_id = e.data.get("request_id") or e.data.get("id")
            if request_id:
                out[str(request_id)] = e.actor
    return out


def _write(item: dict[str, Any], approvers: dict[str, str]) -> dict[str, Any]:
    approval = item.get("approval") or None
    return {"time_s": item["t"], "resource": item["resource"], "operation": item["effect"],
            "summary": item.get("op", ""), "rows": item["rows"], "trace_id": item["trace"],
            "span_id": item["span"],
            "approval": approval, "approved_by": approvers.get(approval) if approval else None,
            "error": item["error"] or None}


def _when(t: float | None) -> str:
    return "—" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def writes_markdown(writes: list[dict[str, Any]]) -> list[str]:
    """The section listing every write and destructive operation since the onset, oldest first."""
    lines = ["## Writes and destructive operations", ""]
    if not writes:
        return [*lines, "- none"]
    lines += ["| time | operation | resource | statement | rows | trace / span | approved by |",
              "|---|---|---|---|---|---|---|"]
    for w in writes:
        failed = f" (failed: {w['error']})" if w["error"] else ""
        approved = readable(w["approved_by"] or "") or (f"request {w['approval']}" if w["approval"] else "—")
        lines.append(f"| {_when(w['time_s'])} | {w['operation']}{failed} | `{w['resource'] or '—'}` | "
                     f"{w['summary'] or '—'} | {w['rows']} | {w['trace_id']} / {w['span_id']} | "
                     f"{approved} |")
    return lines


def _resources_markdown(resources: dict[str, dict[str, Any]]) -> list[str]:
    if not resources:
        return ["- none"]
    return ["| resource | new | calls | rows | first | traces |", "|---|---|---|---|---|---|",
            *(f"| `{name}` | {'**new**' if seen['new'] else ''} | {seen['calls']} | {seen['rows']} | "
              f"{_when(seen['first_s'])} | {', '.join(seen['traces'])} |" for name, seen in resources.items())]


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown; a section with nothing in it says "- none" (so does every other)."""
    when = _when

    lines = [f"# Incident report: {report['agent']}", "",
             f"- Owner: {report['owner'] or 'unknown'} · team {report['team'] or '—'} · "
             f"environment {report['environment'] or '—'}",
             f"- Onset: {when(report['onset_s'])} — {report['onset']}",
             f"- Since then: {report['spans']} spans, ${report['spend_usd']:.2f} spent, "
             f"{sum(report['errors'].values())} errors",
             f"- Activity history kept from {when(report['history_from_s'])} (\"new\" means not touched in it "
             "before the onset)", "", "## Resources touched", ""]
    lines += [*_resources_markdown(report["resources"]), "", *writes_markdown(report["writes"])]
    lines += ["", "## Tool calls", ""] + ([f"- `{t}`: {n}" for t, n in report["tools"].items()] or ["- none"])
    lines += ["", "## Models", ""] + ([f"- `{m}`: {v['calls']} calls, ${v['usd']:.2f}"
                                       for m, v in report["models"].items()] or ["- none"])
    lines += ["", "## Errors", ""] + ([f"- `{t}`: {n}" for t, n in report["errors"].items()] or ["- none"])
    lines += ["", "## Decisions and who acted", ""]
    lines += [f"- {when(a['time_s'])} — {a['kind']} `{a['action']}` by {readable(a['actor'])}: {a['reason']}"
              for a in report["actions"]] or ["- none"]
    lines += ["", f"Humans who acted: {', '.join(map(readable, report['humans'])) or 'none'}", ""]
    return "\n".join(lines)
