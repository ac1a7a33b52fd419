"""Per-agent metrics for teams on Prometheus and Grafana, beside the service's own on `GET /metrics`: spend,
calls, errors, findings and scores, the decision in force and pending approvals, per agent.

Cardinality is bounded as for Datadog (`dashboards/metrics_catalog.py`): the first `max_agents` agents get
their own `agent` label, the rest share `agent="other"`; `model` is a price-table name or `unpriced`;
`detector`, `severity`, `action` and `call` come from fixed sets. Counters only grow, so an agent counted
under "other" stays there. `grafana/spanwarden_agents.json` beside the Datadog definitions queries these names (a
test ties them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Decision

OTHER = "other"
Figures = dict[str, tuple[str, str, Any, tuple[str, ...]]]
AGENT_LABELS = ("agent", "team", "env")

# name -> (type, help, labels): the catalogue the Grafana dashboard is checked against.
CATALOGUE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "spanwarden_agent_spend_usd": ("counter", "LLM spend in USD", (*AGENT_LABELS, "model")),
    "spanwarden_agent_calls": ("counter", "spans seen (call: llm, tool or other)", (*AGENT_LABELS, "call")),
    "spanwarden_agent_errors": ("counter", "spans that ended in error", AGENT_LABELS),
    "spanwarden_agent_findings": ("counter", "findings", (*AGENT_LABELS, "detector", "severity")),
    "spanwarden_agent_detector_score": ("gauge", "the latest finding's score (>= 1 is anomalous)",
                                        ("agent", "detector")),
    "spanwarden_agent_decision": ("gauge", "agents under each action in force (1 per agent; a count for other)",
                                  ("agent", "action")),
    "spanwarden_agent_scoped_decisions": ("gauge", "decisions in force for some of an agent's calls (a tool, "
                                          "model or resource)", ("agent",)),
    "spanwarden_agent_pending_approvals": ("gauge", "tool approvals and access requests waiting for a human",
                                           ("agent",)),
}


class AgentMetrics:
    def __init__(self, model_name: Callable[[str], str | None] = lambda model: None,
                 max_agents: int = 1000) -> None:
        self.model_name = model_name
        self.max_agents = max_agents
        self.labelled: set[str] = set()
        self._models: dict[str, str] = {}
        self._counters: dict[str, dict[tuple[str, ...], float]] = defaultdict(lambda: defaultdict(float))
        self._scores: dict[tuple[str, str], float] = {}

    def label(self, agent: str) -> str:
        """The agent's own label while there is room, else "other" (for good)."""
        if agent in self.labelled:
            return agent
        if len(self.labelled) < self.max_agents:
            self.labelled.add(agent)
            return agent
        return OTHER

    def _model(self, model: str) -> str:
        found = self._models.get(model)
        if found is None:
            found = self.model_name(model) or "unpriced"
            if len(self._models) < 10_000:
                self._models[model] = found
        return found

    def records(self, records: Iterable[SpanRecord]) -> None:
        calls, spend, errors = (self._counters[n] for n in ("spanwarden_agent_calls", "spanwarden_agent_spend_usd",
                                                              "spanwarden_agent_errors"))
        for r in records:
            agent = (self.label(r.agent_id), r.team or "none", r.environment or "none")
            calls[(*agent, "llm" if r.is_llm_call else "tool" if r.is_tool_call else "other")] += 1
            if r.cost_usd:
                spend[(*agent, self._model(r.model))] += r.cost_usd
            if r.is_error:
                errors[agent] += 1

    def counts(self, agent_id: str, team: str, environment: str, call: str, model: str, n: int, usd: float,
               errors: int) -> None:
        """What `records` counts, from a rollup of `n` calls (the Kafka gateway's, from its workers)."""
        agent = (self.label(agent_id), team or "none", environment or "none")
        self._counters["spanwarden_agent_calls"][(*agent, call)] += n
        if usd:
            self._counters["spanwarden_agent_spend_usd"][(*agent, self._model(model))] += usd
        if errors:
            self._counters["spanwarden_agent_errors"][agent] += errors

    def finding(self, finding: Finding, ref: AgentRef) -> None:
        agent = self.label(finding.agent_id)
        self._counters["spanwarden_agent_findings"][
            (agent, ref.team or "none", ref.environment or "none", finding.detector, finding.severity.label)] += 1
        self._scores[(agent, finding.detector)] = float(finding.score)

    def figures(self, decisions: Iterable[Decision], scoped: dict[str, int], pending: dict[str, int]) -> Figures:
        """Everything, read at scrape time; `decisions` are the agent-wide ones in force, `scoped` and
        `pending` counts per agent."""
        out: Figures = {}
        for name, values in self._counters.items():
            kind, help_text, labels = CATALOGUE[name]
            out[name] = (kind, help_text, dict(values), labels)
        kind, help_text, labels = CATALOGUE["spanwarden_agent_detector_score"]
        out["spanwarden_agent_detector_score"] = (kind, help_text, dict(self._scores), labels)
        in_force: dict[tuple[str, ...], float] = defaultdict(float)
        for d in decisions:
            in_force[(self._known(d.agent_id), d.action.value)] += 1
        out["spanwarden_agent_decision"] = (*CATALOGUE["spanwarden_agent_decision"][:2], dict(in_force),
                                            CATALOGUE["spanwarden_agent_decision"][2])
        for name, counts in (("spanwarden_agent_scoped_decisions", scoped),
                             ("spanwarden_agent_pending_approvals", pending)):
            merged: dict[tuple[str, ...], float] = defaultdict(float)
            for agent, n in counts.items():
                merged[(self._known(agent),)] += n
            out[name] = (CATALOGUE[name][0], CATALOGUE[name][1], dict(merged), CATALOGUE[name][2])
        return out

    def _known(self, agent: str) -> str:
        """At scrape time, an agent in force gets its label as a span would give it (while there is room):
        after a restart the labels are handed out again, and an agent that has not reported since is not
        `other` while the bound is far off."""
        return self.label(agent)
