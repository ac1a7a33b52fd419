"""`Arrivals.settle` (records released at once when they need no buffer) releases exactly what buffering them
and releasing would: the same records, in the same order, at the same decision times, with the same state left
behind — for chunks in order and out of it, with and without receive times, ties of event time across agents
and within one, and records not yet due."""

from __future__ import annotations

import random

import pytest

from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.event_time import Arrivals, TimeBounds

T0 = 1_800_000_000.0


def chunks(seed: int, received: bool) -> list[list[SpanRecord]]:
    """Chunks of a few agents' records: mostly in event-time order, some with ties of end time (across agents
    and within one), some shuffled, some with a record dated in the future."""
    rng = random.Random(seed)
    t_ns = int(T0 * 1e9)
    out, n = [], 0
    for c in range(60):
        chunk = []
        for _ in range(rng.randint(1, 30)):
            if rng.random() < 0.7:
                t_ns += rng.randrange(1, 3_000_000_000)
            n += 1
            agent = f"agent-{rng.choice('abcd')}"
            record = make_record(agent_id=agent, span_id=f"{rng.randrange(50):016x}",
                                 trace_id=f"{rng.randrange(3):032x}", end_ns=t_ns)
            if received:
                ahead = rng.random() < 0.05  # a span ahead of the service clock: not due yet
                record = record._replace(received_s=t_ns / 1e9 - (rng.uniform(0.5, 4) if ahead else 0.0))
            chunk.append(record)
        if c % 7 == 3:
            rng.shuffle(chunk)
        elif c % 5 != 1:  # in release order (event time, agent, trace, span): the case settle shortcuts
            chunk.sort(key=lambda r: (r.end_ns, r.agent_id, r.trace_id, r.span_id))
        out.append(chunk)
    return out


@pytest.mark.parametrize("received", [False, True])
@pytest.mark.parametrize("lateness", [0.0, 2.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_settle_releases_exactly_what_hold_and_release_do(seed, lateness, received):
    bounds = TimeBounds(max_lateness_s=lateness, max_skew_s=5.0)
    settled, reference = Arrivals(bounds), Arrivals(bounds)
    released = 0
    for chunk in chunks(seed, received):
        got = settled.settle([settled.stamp(r) for r in chunk])
        entries = [reference.stamp(r) for r in chunk]
        for entry in entries:
            reference.hold(entry)
        want = reference.release()
        assert [(t, r.agent_id, r.span_id, r.trace_id, r.end_ns) for t, r in got] == \
            [(t, r.agent_id, r.span_id, r.trace_id, r.end_ns) for t, r in want]
        assert all(a is b for (_, a), (_, b) in zip(got, want, strict=True))  # the very records
        assert settled.to_state() == reference.to_state()
        assert settled.due == reference.due
        released += len(got)
    settled.advance(T0 + 10**6)
    reference.advance(T0 + 10**6)
    assert [r for _, r in settled.release()] == [r for _, r in reference.release()]
    assert released > 300


def test_settle_with_a_limit_or_per_agent_clocks_holds_as_release_does():
    """A judge limit shorter than the chunk, and a partitioned runtime's per-agent clocks, go through the
    buffer: what is left over stays due exactly as `release` leaves it."""
    for shared, limit in ((True, 5), (False, None)):
        a, b = Arrivals(TimeBounds(), shared=shared), Arrivals(TimeBounds(), shared=shared)
        for chunk in chunks(9, False):
            agents = {r.agent_id for r in chunk} if not shared else None
            got = a.settle([a.stamp(r) for r in chunk], agents, limit)
            for entry in [b.stamp(r) for r in chunk]:
                b.hold(entry)
            want = b.release(agents, limit)
            assert [r for _, r in got] == [r for _, r in want]
            assert a.to_state() == b.to_state() and a.due == b.due
