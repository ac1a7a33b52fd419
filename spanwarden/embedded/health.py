"""Monitoring the monitor, embedded side: what `serve` adds to `/healthz` and the figures behind `/metrics`,
read from the service when asked (the health rules themselves are the server layer's, alike for both
runtimes: spanwarden/server/service_routes.py)."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from spanwarden.server.runtime import Figures

if TYPE_CHECKING:
    from spanwarden.embedded.service import EmbeddedService


def _span_age(service: EmbeddedService) -> float | None:
    return None if service.last_span_wall is None else time.time() - service.last_span_wall


def body(service: EmbeddedService) -> dict[str, Any]:
    """What `/healthz` says of the pipeline."""
    age = _span_age(service)
    return {"records": service.pipeline.records_seen, "agents": len(service.pipeline.agents),
            "last_span_age_s": None if age is None else round(age, 3),
            "policy_version": service.pipeline.policy.version}


def figures(service: EmbeddedService) -> Figures:
    pipeline = service.pipeline
    in_force = Counter(ladder.current.action.value for ladder in pipeline.ladders.values())
    age = _span_age(service)
    out: Figures = {
        "spanwarden_records": ("counter", "spans processed", pipeline.records_seen, ()),
        "spanwarden_records_clamped": ("counter", "spans whose end time was held to the bounds around their "
                                       "receipt (flagged clamped_time)", float(pipeline.arrivals.clamped), ()),
        "spanwarden_agents": ("gauge", "agents known", len(pipeline.agents), ()),
        "spanwarden_decisions_in_force": ("gauge", "agents by the action in force",
                                          {(a,): float(n) for a, n in in_force.items()}, ("action",)),
        "spanwarden_audit_entries": ("counter", "audit entries in the chain",
                                     float(getattr(service.audit, "seq", 0)), ()),
        "spanwarden_last_span_age_seconds": ("gauge", "seconds since spans last arrived",
                                             float("nan") if age is None else age, ()),
        "spanwarden_loop_stall_max_seconds": ("gauge", "longest the event loop was held (loop-lag probe)",
                                              service.loop_probe.max_stall_s, ()),
        "spanwarden_loop_held_max_seconds": ("gauge", "most CPU the loop's thread spent between two probe wakes",
                                             service.loop_probe.max_held_s, ()),
        "spanwarden_loop_stalls_over_100ms": ("counter", "times the event loop was held over 100 ms",
                                              float(service.loop_probe.stalls_over_100ms), ()),
        "spanwarden_new_agents_refused": ("counter", "new agent names past the caps (their spans dropped)",
                                          float(service.agent_cap.refused_agents), ()),
        "spanwarden_spans_refused_new_agent_cap": ("counter", "spans dropped: their agent was past the caps",
                                                   float(service.agent_cap.refused_records), ()),
        "spanwarden_ingest_overloaded": ("counter", "span batches answered 429 (the pipeline's queue was full)",
                                         float(service.ingest_worker.refused), ()),
    }
    if service.reporting is not None:
        dropped = service.reporting.exporter.dropped
        by_signal = {(s,): float(dropped[s]) for s in ("metrics", "events", "logs")}
        out["spanwarden_datadog_dropped"] = ("counter", "items the Datadog exporter dropped", by_signal,
                                             ("signal",))
    return out


def _by_agent(service: EmbeddedService, counts: dict[str, int]) -> dict[tuple[str, ...], float]:
    """Per-agent counts under the bounded agent labels of `/metrics` (the rest as agent="other")."""
    merged: Counter[tuple[str, ...]] = Counter()
    for agent, n in counts.items():
        merged[(service.agent_metrics.label(agent),)] += n
    return {k: float(v) for k, v in merged.items()}


def agent_figures(service: EmbeddedService) -> Figures:
    """What `GET /metrics/agents` (viewer role) shows: per-agent figures under the bounded agent labels —
    agent names and spend are not for whoever can reach the port."""
    pipeline = service.pipeline
    now = service.clock()
    scoped = {a: len(pipeline.scoped(a)) for a in pipeline.ladders}
    pending: Counter[str] = Counter(r.agent_id for r in service.approvals.book.pending(now))
    pending.update(r.agent_id for r in pipeline.access.pending())
    decisions = [pipeline.decision(a) for a in pipeline.ladders]
    out = service.agent_metrics.figures(decisions, {a: n for a, n in scoped.items() if n}, dict(pending))
    out["spanwarden_llm_spans_without_usage"] = (
        "counter", "spans that look like LLM calls but report no usage, by agent",
        _by_agent(service, service.trace_stage.without_usage), ("agent",))
    return out
