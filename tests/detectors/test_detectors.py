"""Behaviours specific to each detector, beyond the shared conformance suite."""

from __future__ import annotations

import json

from spanwarden.collector.span_record import make_record
from spanwarden.detectors.cost_velocity import CostVelocity, CostVelocityConfig
from spanwarden.detectors.data_access import DataAccess
from spanwarden.detectors.finding import Severity
from spanwarden.detectors.runaway_loop import RunawayLoop

from . import traffic
from .traffic import T0


def run(detector, records):
    return [f for r in records if (f := detector.observe(r)) is not None]


def calls(start, count, every_s, **fields):
    return [make_record(agent_id="agent-a", span_id=f"c{i:015x}", end_ns=int((start + i * every_s) * 1e9),
                        **fields) for i in range(count)]


def test_a_cycle_of_two_calls_is_a_loop():
    detector = RunawayLoop("agent-a")
    normal = traffic.normal(1, 3)
    cycle = [r._replace(tool_name=t, fingerprint=f"tool:{t}:same")
             for r, t in zip(calls(T0 + 3 * 3600, 120, 0.5), ["plan", "check"] * 60, strict=True)]
    findings = run(detector, traffic.merged(normal, cycle))
    assert findings and findings[0].kind == "call_cycle"
    assert "tool:plan:same" in findings[0].subject and "tool:check:same" in findings[0].subject


def test_an_agent_that_normally_repeats_a_call_is_judged_on_its_own_terms():
    """A poller making the same call every 3 s is its normal; the same rate would be a loop for others."""
    poller = RunawayLoop("agent-a")
    steady = calls(T0, 3 * 3600 // 3, 3.0, tool_name="poll", fingerprint="tool:poll:feed")
    assert [f for f in run(poller, steady) if f.severity >= Severity.WARNING] == []
    faster = calls(T0 + 3 * 3600, 200, 0.25, tool_name="poll", fingerprint="tool:poll:feed")
    assert run(poller, faster)  # five times its usual pace is still a loop


def test_hourly_budget_projection_then_ceiling():
    detector = CostVelocity("agent-a", CostVelocityConfig(hourly_budget_usd=10.0))
    findings = run(detector, calls(T0, 600, 1.0, cost_usd=0.03))  # $1.80/min: $10 in under 6 minutes
    kinds = [f.kind for f in findings]
    assert kinds[0] == "budget_projection" and findings[0].severity is Severity.WARNING
    ceiling = next(f for f in findings if f.kind == "budget_exceeded")
    assert ceiling.severity is Severity.CRITICAL and ceiling.observed > 10


def test_daily_ceiling():
    detector = CostVelocity("agent-a", CostVelocityConfig(hourly_budget_usd=None, daily_budget_usd=5.0))
    findings = run(detector, calls(T0, 4 * 60, 60.0, cost_usd=0.03))  # $1.80/hour for four hours
    assert [f.kind for f in findings if f.kind == "budget_exceeded"] and findings[-1].unit == "usd_per_day"


def test_volume_spike_on_a_known_table():
    detector = DataAccess("agent-a")
    normal = [r._replace(rows=20 if r.resource else 0) for r in traffic.normal(2, 4)]
    bulk = calls(T0 + 4 * 3600, 10, 5.0, tool_name="sql_query", resource=traffic.TABLES[0], rows=200_000)
    findings = [f for f in run(detector, traffic.merged(normal, bulk)) if f.severity >= Severity.WARNING]
    assert findings and findings[0].kind == "volume_spike" and findings[0].time_s >= T0 + 4 * 3600


def test_a_slow_creep_does_not_become_the_new_normal():
    """Spend that grows 30x over three hours is caught: the upper tail learns high windows only slowly."""
    detector = CostVelocity("agent-a", CostVelocityConfig(hourly_budget_usd=None))
    base = [r._replace(cost_usd=0.01) for r in traffic.normal(3, 24)]
    onset = T0 + 24 * 3600
    creep = [r._replace(cost_usd=0.01 * (1 + 30 * i / 2160)) for i, r in enumerate(calls(onset, 2160, 5.0))]
    findings = [f for f in run(detector, traffic.merged(base, creep)) if f.severity >= Severity.WARNING]
    assert findings and all(f.time_s >= onset for f in findings)


def test_millions_of_distinct_resources_keep_memory_bounded():
    """The profile holds at most max_profile resources (the least used are forgotten first), the window of
    new ones is capped, so an agent touching endless distinct resources cannot grow its state."""
    detector = DataAccess("agent-a")
    run(detector, traffic.normal(4, 1))
    sizes = []
    for i in range(50_000):
        detector.observe(make_record(agent_id="agent-a", end_ns=int((T0 + 3600 + i * 0.01) * 1e9),
                                     resource=f"db:pg:x.t{i}"))
        if i % 10_000 == 0:
            sizes.append(len(json.dumps(detector.to_state())))
    assert len(detector.profile) <= detector.config.max_profile
    assert len(detector.recent_novel) <= 4 * detector.config.novel_critical
    assert max(sizes) < 1.5 * min(sizes[1:])
