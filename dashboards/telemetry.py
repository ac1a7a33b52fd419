"""What happened in the pipeline, rolled up into Datadog-shaped batches: metric points per flush interval,
events for decisions, the audit entries as logs. Pure: the exporter sends what `flush` returns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spanwarden.collector.normalize import NO_USAGE
from spanwarden.collector.span_record import SpanRecord
from spanwarden.dashboards.metrics_catalog import METRICS
from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry
from spanwarden.enforcers.decision import Action, Decision

OTHER_AGENT = "other"
EVENT_TAG_KEYS = ("agent", "team", "env", "action", "approval", "owner", "source")  # what events are tagged with
LOG_TAG_KEYS = ("agent", "team", "env", "kind")  # the audit logs' ddtags
EVENT_ACTIONS = {Action.WARN: "warning", Action.THROTTLE: "warning", Action.HALT: "error",
                 Action.REQUIRE_APPROVAL: "info"}


@dataclass(frozen=True)
class Point:
    metric: str
    value: float
    tags: tuple[str, ...]


@dataclass
class Batch:
    time_s: int
    points: list[Point] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # title, text, tags, alert_type, aggregation_key
    logs: list[dict[str, Any]] = field(default_factory=list)  # message, ddtags, and the entry's fields

    def __len__(self) -> int:
        return len(self.points) + len(self.events) + len(self.logs)


class Telemetry:
    def __init__(self, model_name: Callable[[str], str | None] = lambda model: None, max_agents: int = 1000,
                 app_url: str = "https://app.datadoghq.com") -> None:
        self.model_name = model_name  # a model's bounded name (the price table's), None if unknown
        self._models: dict[str, str] = {}
        self.max_agents = max_agents
        self.app_url = app_url.rstrip("/")
        self._agents: set[str] = set()
        self._counts: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        self._gauges: dict[tuple[str, tuple[str, ...]], float] = {}
        self._events: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []

    def _agent_tags(self, agent: str, team: str, env: str) -> tuple[str, ...]:
        if agent not in self._agents:
            if len(self._agents) >= self.max_agents:
                agent = OTHER_AGENT
            else:
                self._agents.add(agent)
        return (f"agent:{agent}", f"team:{team or 'none'}", f"env:{env or 'none'}")

    def _count(self, metric: str, tags: tuple[str, ...], value: float = 1.0) -> None:
        self._counts[(metric, tags)] += value

    def _gauge_max(self, metric: str, tags: tuple[str, ...], value: float) -> None:
        key = (metric, tags)
        self._gauges[key] = max(value, self._gauges.get(key, float("-inf")))

    def records(self, records: list[SpanRecord], now_s: float) -> None:
        for r in records:
            tags = self._agent_tags(r.agent_id, r.team, r.environment)
            call = "llm" if r.is_llm_call else "tool" if r.is_tool_call else "other"
            self._count("spanwarden.calls", (*tags, f"call:{call}"))
            if r.cost_usd:
                self._count("spanwarden.spend.usd", (*tags, f"model:{self._model_tag(r.model)}"), r.cost_usd)
            if r.is_error:
                self._count("spanwarden.errors", tags)
            if NO_USAGE in r.flags:
                self._count("spanwarden.llm_spans_without_usage", tags)
        if records:
            self._count("spanwarden.pipeline.records", (), len(records))
            self._gauge_max("spanwarden.pipeline.lag_s", (), max(0.0, now_s - min(r.time_s for r in records)))

    def _model_tag(self, model: str) -> str:
        tag = self._models.get(model)
        if tag is None:
            tag = self.model_name(model) or "unpriced"
            if len(self._models) < 10_000:  # model names come from spans: keep the memo bounded
                self._models[model] = tag
        return tag

    def finding(self, finding: Finding, ref: AgentRef) -> None:
        tags = self._agent_tags(finding.agent_id, ref.team, ref.environment)
        self._gauge_max("spanwarden.detector.score", (*tags, f"detector:{finding.detector}"), finding.score)
        self._count("spanwarden.findings", (*tags, f"detector:{finding.detector}", f"kind:{finding.kind}",
                                            f"severity:{finding.severity.label}"))

    def decision(self, decision: Decision, ref: AgentRef) -> None:
        tags = self._agent_tags(decision.agent_id, ref.team, ref.environment)
        by = "human" if decision.decided_by.startswith("human:") else "policy"
        self._count("spanwarden.decisions", (*tags, f"action:{decision.action.value}", f"decided_by:{by}"))
        alert = EVENT_ACTIONS.get(decision.action)
        if alert is None:
            return
        scope = f" ({decision.scope})" if decision.scope else ""
        self._events.append({
            "title": f"spanwarden: {decision.action.value} {decision.agent_id}{scope} in {ref.environment or '?'}",
            "text": (f"{decision.reason}\n\nDecided by {decision.decided_by}. "
                     f"Agent owner: {ref.owner or 'unknown'}, team {ref.team or 'none'}.\n\n"
                     f"Agent: {self.app_url}/dashboard/lists?q=spanwarden%20agent "
                     f"(template variable agent:{decision.agent_id}) · Enforcement: "
                     f"{self.app_url}/dashboard/lists?q=spanwarden%20enforcement"),
            "tags": [*tags, f"action:{decision.action.value}", f"owner:{ref.owner or 'unknown'}",
                     "source:spanwarden"],
            "alert_type": alert, "aggregation_key": f"spanwarden-{decision.agent_id}",
        })

    def audit(self, entry: AuditEntry) -> None:
        agent = entry.agent
        if entry.kind == "approval":  # a destructive call waiting for, or answered by, a human
            status = str(entry.data.get("status", ""))
            self._events.append({
                "title": f"spanwarden: approval {status} for {agent.id} "
                         f"({entry.data.get('tool') or entry.data.get('resource') or '?'})",
                "text": f"{entry.reason}\n\nBy {entry.actor}. Agent owner: {agent.owner or 'unknown'}.",
                "tags": [*self._agent_tags(agent.id, agent.team, agent.environment), f"approval:{status}",
                         "source:spanwarden"],
                "alert_type": "info" if status in ("pending", "approved") else "warning",
                "aggregation_key": f"spanwarden-approval-{agent.id}"})
        self._logs.append({
            "message": f"{entry.kind}: {entry.reason}",
            "ddtags": ",".join((f"agent:{agent.id or 'none'}", f"team:{agent.team or 'none'}",
                                f"env:{agent.environment or 'none'}", f"kind:{entry.kind}")),
            "seq": entry.seq, "kind": entry.kind, "actor": entry.actor, "owner": agent.owner,
            "agent_id": agent.id, "policy_version": entry.policy_version, "evidence": list(entry.evidence),
            "time_s": entry.time_s, "hash": entry.hash, "prev_hash": entry.prev_hash, "data": entry.data,
        })

    def flush(self, now_s: float, extra: list[Point] | None = None) -> Batch:
        """Everything since the last flush; counts and gauges start again."""
        batch = Batch(int(now_s))
        batch.points = [Point(m, v, t) for (m, t), v in self._counts.items()]
        batch.points += [Point(m, v, t) for (m, t), v in self._gauges.items()]
        batch.points += extra or []
        unknown = {p.metric for p in batch.points} - set(METRICS)
        assert not unknown, f"metrics missing from the catalogue: {unknown}"
        batch.events, batch.logs = self._events, self._logs
        self._counts, self._gauges, self._events, self._logs = defaultdict(float), {}, [], []
        return batch
