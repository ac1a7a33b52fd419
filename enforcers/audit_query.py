"""Questions auditors ask of the audit log: the entries in a time range for an agent (export), and the
responsibility chain behind the decision in force at a moment (explain)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spanwarden.collector.agent_identity import describe
from spanwarden.enforcers.audit_index import agent_lines
from spanwarden.enforcers.audit_log import AuditEntry, read_entries

CSV_COLUMNS = ("seq", "time_s", "kind", "agent_id", "owner", "team", "environment", "agent_version", "actor",
               "reason", "evidence", "policy_version", "data", "prev_hash", "hash")


class AuditReadError(ValueError):
    """The log has an unreadable line; `audit verify` says more."""


def entries(path: Path, since: float | None = None, until: float | None = None,
            agent: str | None = None) -> Iterator[AuditEntry]:
    """The entries in the time range (for one agent: through the log's index, when it matches the log)."""
    lines = agent_lines(path, agent) if agent is not None else None
    source = read_entries(path) if lines is None else _parsed(lines)
    for where, entry in source:
        if isinstance(entry, Exception):
            raise AuditReadError(f"{where} is unreadable ({entry}); run `spanwarden audit verify`")
        if since is not None and entry.time_s < since:
            continue
        if until is not None and entry.time_s > until:
            continue
        if agent is not None and entry.agent.id != agent:
            continue
        yield entry


def _parsed(lines: Iterator[bytes]) -> Iterator[tuple[str, AuditEntry | Exception]]:
    for line in lines:
        try:
            yield "index", AuditEntry.from_json(line.decode())
        except (ValueError, TypeError, KeyError) as exc:
            yield "index", exc


def export(selected: Iterable[AuditEntry], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(e.to_json() + "\n" for e in selected)
    if fmt != "csv":
        raise ValueError(f"unknown format {fmt!r}; use jsonl or csv")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in selected:
        writer.writerow([e.seq, e.time_s, e.kind, e.agent.id, e.agent.owner, e.agent.team, e.agent.environment,
                         e.agent.version, e.actor, e.reason, " ".join(e.evidence), e.policy_version,
                         json.dumps(e.data, sort_keys=True), e.prev_hash, e.hash])
    return out.getvalue()


@dataclass
class Explanation:
    """Why an agent is in the state it is in at a moment, and who is responsible."""

    agent: str
    at: float
    decision: AuditEntry | None  # the decision in force (the newest one at or before `at`)
    findings: list[AuditEntry] = field(default_factory=list)  # what the agent did that led to it
    commands: list[AuditEntry] = field(default_factory=list)  # humans who acted on the agent up to then
    history: list[AuditEntry] = field(default_factory=list)  # every decision up to then
    scoped: list[AuditEntry] = field(default_factory=list)  # in force for some calls (a tool, model, resource)
    identity: str = ""  # where the agent's id came from on its spans (the newest finding's record says)
    scoped_findings: dict[int, list[AuditEntry]] = field(default_factory=dict)  # scoped entry seq -> findings
    newest: AuditEntry | None = None  # the agent's newest entry up to then: who it is, without a decision

    def to_dict(self) -> dict[str, Any]:
        def brief(e: AuditEntry) -> dict[str, Any]:
            return {"seq": e.seq, "time_s": e.time_s, "kind": e.kind, "actor": e.actor, "reason": e.reason,
                    "evidence": list(e.evidence), "policy_version": e.policy_version}

        d = self.decision
        known = d or (self.scoped[-1] if self.scoped else None) or self.newest
        return {
            "agent": self.agent, "at": self.at,
            "who": None if known is None else {"owner": known.agent.owner, "team": known.agent.team,
                                               "environment": known.agent.environment,
                                               "version": known.agent.version},
            "decision": None if d is None else {**brief(d), "action": d.data.get("action"),
                                                "decided_by": d.data.get("decided_by")},
            "because_of": [brief(f) for f in self.findings],
            "human_commands": [brief(c) for c in self.commands],
            "decisions_so_far": [{**brief(h), "action": h.data.get("action")} for h in self.history],
            "identity": {"source": self.identity, "from": describe(self.identity)} if self.identity else None,
            "scoped_in_force": [{**brief(e), "action": e.data.get("action"), "scope": e.data.get("scope"),
                                 "decided_by": e.data.get("decided_by"),
                                 "because_of": [brief(f) for f in self.scoped_findings.get(e.seq, [])]}
                                for e in self.scoped],
        }


def explain(path: Path, agent: str, at: float | None = None, lookback_s: float = 900.0) -> Explanation:
    """The agent-wide decision in force for `agent` at `at` (default: the end of the log), the findings in
    the `lookback_s` before it that it names, and the humans' commands up to then. Decisions scoped to some
    calls (a tool, a model, a resource) stand beside it and are in `history`."""
    mine = list(entries(path, agent=agent))
    moment = at if at is not None else max((e.time_s for e in mine), default=0.0)
    upto = [e for e in mine if e.time_s <= moment]
    decisions = [e for e in upto if e.kind == "decision"]
    agent_wide = [e for e in decisions if not e.data.get("scope")]
    decision = agent_wide[-1] if agent_wide else None
    result = Explanation(agent, moment, decision, history=decisions,
                         commands=[e for e in upto if e.kind == "command"],
                         scoped=_scoped_in_force(decisions, moment),
                         identity=next((str(e.data["identity"]) for e in reversed(upto)
                                        if e.kind == "finding" and e.data.get("identity")), ""))
    result.newest = upto[-1] if upto else None
    for e in result.scoped:  # the findings behind a scope: those whose evidence its first decision carries
        first = next(h for h in decisions if h.data.get("scope") == e.data.get("scope"))
        evidence = set(first.evidence)
        result.scoped_findings[e.seq] = [f for f in upto if f.kind == "finding" and evidence & set(f.evidence)
                                         and first.time_s - lookback_s <= f.time_s <= first.time_s]
    if decision is not None:
        named = set(decision.data.get("findings", ()))
        start = decision.time_s - lookback_s
        result.findings = [e for e in upto if e.kind == "finding" and start <= e.time_s <= decision.time_s
                           and f"{e.data.get('detector')}/{e.data.get('kind')}" in named]
    return result


def _scoped_in_force(decisions: list[AuditEntry], moment: float) -> list[AuditEntry]:
    """The latest decision of each scope, where it still holds at `moment` (not lifted, not expired)."""
    latest: dict[str, AuditEntry] = {}
    for e in decisions:
        if e.data.get("scope"):
            latest[str(e.data["scope"])] = e
    return [e for e in latest.values() if e.data.get("action") != "allow"
            and (e.data.get("expires_s") is None or float(e.data["expires_s"]) > moment)]
