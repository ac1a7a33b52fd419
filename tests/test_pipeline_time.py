"""Service time: event times held to the service clock, records judged in event-time order whatever order they
arrive in, and decisions, lapses and human overrides on the service's time — never moved by a span."""

from __future__ import annotations

import json
import random

import pytest

from spanwarden.audit_sink import MemoryAuditSink
from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.event_time import CLAMPED, TimeBounds
from spanwarden.pipeline import Pipeline

from .detectors import traffic
from .detectors.traffic import T0

BOUNDS = TimeBounds(max_lateness_s=10.0, max_skew_s=5.0)
ONSET = T0 + 3 * 3600


def prod(records: list[SpanRecord]) -> list[SpanRecord]:
    return [r._replace(team="support", environment="prod", owner="o@example.com") for r in records]


def replicas(records: list[SpanRecord], count: int, seed: int) -> list[SpanRecord]:
    """The agent's work spread over `count` replicas (service.instance.id), each with its own clock skew."""
    rng = random.Random(seed)
    skews = [rng.uniform(-3, 3) for _ in range(count)]
    out = []
    for r in records:
        skew = int(skews[int(r.span_id, 16) % count] * 1e9)
        out.append(r._replace(start_ns=r.start_ns + skew, end_ns=r.end_ns + skew))
    return out


def stream() -> list[SpanRecord]:
    """Three hours of one agent's normal work, then a runaway loop and reads of tables it never touched."""
    normal = prod(traffic.normal(3, 3))
    return traffic.merged(normal, prod(traffic.runaway(ONSET, 40)), prod(traffic.new_tables(ONSET + 60, 9)))


def arrive(records: list[SpanRecord], seed: int, in_order: bool) -> list[list[SpanRecord]]:
    """Batches as the service receives them: each record late by up to the lateness bound (or early by up to
    the skew bound), stamped with its receive time; `in_order` arrivals are late by a fixed second."""
    rng = random.Random(seed)
    stamped = []
    for r in records:
        delay = 1.0 if in_order else rng.uniform(-BOUNDS.max_skew_s + 0.01, BOUNDS.max_lateness_s - 0.01)
        stamped.append(r._replace(received_s=round(r.time_s + delay, 6)))
    stamped.sort(key=lambda r: r.received_s)
    batches, i = [], 0
    while i < len(stamped):
        size = 1 if in_order else rng.randint(1, 40)
        batches.append(stamped[i:i + size])
        i += size
    return batches


def run(batches: list[list[SpanRecord]], restart_at: int | None = None) -> tuple[list[Decision], Pipeline]:
    pipeline = Pipeline(Policy.load(), MemoryAuditSink(), time_bounds=BOUNDS)
    decisions: list[Decision] = []
    for n, batch in enumerate(batches):
        if n == restart_at:
            saved = json.loads(json.dumps(pipeline.to_state()))
            pipeline = Pipeline(Policy.load(), MemoryAuditSink(), time_bounds=BOUNDS)
            pipeline.load_state(saved)
            assert pipeline.to_state() == saved
        decisions += pipeline.process(batch)
    last = max(r.received_s for r in batches[-1])
    decisions += pipeline.process([])
    pipeline.arrivals.advance(last + 60)
    decisions += pipeline._judge_due(None)
    return decisions, pipeline


def summary(decisions: list[Decision]) -> list[tuple[str, str, float, str]]:
    return [(d.action.value, d.decided_by, round(d.issued_s, 6), d.reason) for d in decisions]


@pytest.mark.parametrize("seed", [1, 2])
def test_shuffled_arrival_within_the_bounds_and_interleaved_replicas_decide_the_same(seed):
    records = replicas(stream(), 3, seed)
    in_order, _ = run(arrive(records, seed, in_order=True))
    assert {d.action for d in in_order} >= {Action.HALT}, "the incident is acted on"
    shuffled, pipeline = run(arrive(records, seed + 100, in_order=False))
    assert summary(shuffled) == summary(in_order)
    assert pipeline.arrivals.clamped == 0  # nothing arrived outside the bounds


def test_a_restart_mid_stream_with_records_waiting_resumes_exactly():
    batches = arrive(stream(), 5, in_order=False)
    straight, _ = run(batches)
    resumed, _ = run(batches, restart_at=len(batches) - 30)
    assert summary(resumed) == summary(straight)


def record(t: float, received: float, **fields: object) -> SpanRecord:
    return make_record(agent_id="a", environment="prod", span_id=f"{int(t * 1000):016x}", end_ns=int(t * 1e9),
                       start_ns=int((t - 1) * 1e9), received_s=received, **fields)


def test_a_span_dated_hours_ahead_is_clamped_flagged_counted_and_cannot_end_a_humans_throttle():
    seen = []
    pipeline = Pipeline(Policy.load(), MemoryAuditSink(), time_bounds=BOUNDS, on_finding=seen.append)
    now = T0
    throttle = pipeline.command("a", Action.THROTTLE, "on-call: slow down", "carol", now, expires_s=now + 3600)
    pipeline.process([record(now + 7200, received=now + 1, cost_usd=0.01, model="gpt-4o")])
    pipeline.advance(now + 30)
    assert pipeline.arrivals.clamped == 1
    assert pipeline.decision("a") == throttle  # not lapsed by the span two hours ahead
    judged = pipeline.detectors["a"].cost.last_time
    assert judged is not None and judged <= now + 1 + BOUNDS.max_skew_s
    lapsed = pipeline.advance(now + 3600)
    assert [d.action for d in lapsed] == [Action.ALLOW] and lapsed[0].issued_s == now + 3600


def test_a_span_dated_an_hour_ahead_cannot_take_a_healthy_agent_to_a_halt():
    pipeline = Pipeline(Policy.load(), MemoryAuditSink(), time_bounds=BOUNDS)
    healthy = [r._replace(received_s=r.time_s + 0.5) for r in prod(traffic.normal(4, 3))]
    decisions = pipeline.process(healthy[:len(healthy) // 2])
    ahead = healthy[len(healthy) // 2]
    forged = ahead._replace(end_ns=ahead.end_ns + int(3600e9), span_id="f" * 16)
    for r in [forged, *healthy[len(healthy) // 2:]]:
        decisions += pipeline.process([r])
    assert [d for d in decisions if d.action is not Action.ALLOW] == []
    assert pipeline.arrivals.clamped == 1


def test_clamping_moves_the_whole_span_and_flags_it():
    from spanwarden.event_time import clamp

    late = record(T0 - 600, received=T0)
    held = clamp(late, BOUNDS)
    assert held.time_s == T0 - BOUNDS.max_lateness_s and held.duration_s == late.duration_s
    assert held.flags == (CLAMPED,)
    assert clamp(record(T0 - 5, received=T0), BOUNDS) == record(T0 - 5, received=T0)
    assert clamp(record(T0, received=0.0), BOUNDS) == record(T0, received=0.0)  # no receive time: as it is
