"""Every metric spanwarden sends to Datadog, with its type and tags: the one list the exporter, the
dashboards and the monitors agree on (a test checks every query against it).

Tag cardinality is bounded by construction: `agent` is capped per exporter (`SPANWARDEN_DATADOG_MAX_AGENTS`,
beyond it `agent:other`), `model` is a model of the price table or `unpriced`, `detector`, `kind`,
`severity`, `action` and `decided_by` come from fixed sets, `team`/`env` from the agents' resources. Span,
trace, resource and tool names are never tags."""

from __future__ import annotations

from dataclasses import dataclass

COUNT, GAUGE = "count", "gauge"
AGENT_TAGS = ("agent", "team", "env")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str
    tags: tuple[str, ...]
    unit: str
    description: str


METRICS = {m.name: m for m in (
    MetricSpec("spanwarden.spend.usd", COUNT, (*AGENT_TAGS, "model"), "dollar", "LLM spend in the interval"),
    MetricSpec("spanwarden.calls", COUNT, (*AGENT_TAGS, "call"), "operation", "spans seen (call: llm/tool/other)"),
    MetricSpec("spanwarden.errors", COUNT, AGENT_TAGS, "error", "spans that ended in error"),
    MetricSpec("spanwarden.llm_spans_without_usage", COUNT, AGENT_TAGS, "span",
               "LLM-looking spans with no tokens or cost (an instrumentation spanwarden cannot read)"),
    MetricSpec("spanwarden.detector.score", GAUGE, (*AGENT_TAGS, "detector"), "",
               "highest finding score in the interval (>= 1 is anomalous; multiples of the warning threshold)"),
    MetricSpec("spanwarden.findings", COUNT, (*AGENT_TAGS, "detector", "kind", "severity"), "", "findings"),
    MetricSpec("spanwarden.decisions", COUNT, (*AGENT_TAGS, "action", "decided_by"), "",
               "decisions made (decided_by: policy or human)"),
    MetricSpec("spanwarden.pipeline.lag_s", GAUGE, (), "second",
               "largest delay from a span's end to its processing in the interval"),
    MetricSpec("spanwarden.pipeline.records", COUNT, (), "record", "records processed"),
    MetricSpec("spanwarden.exporter.dropped", COUNT, ("signal",), "",
               "metrics, events or logs the exporter had to drop (queue full, Datadog unreachable)"),
    MetricSpec("spanwarden.exporter.queue_depth", GAUGE, (), "", "batches waiting to be sent"),
)}
