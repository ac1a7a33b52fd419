"""The detector bench's served-bounds run holds records as the serve does and judges them all the same: the
detectors learn under the lateness bound and judge limit exactly what they learn with nothing held (no record
lost, added or reordered by the buffer)."""

from __future__ import annotations

from spanwarden.audit_sink import MemoryAuditSink
from spanwarden.bench import detectors as bench
from spanwarden.enforcers.policy import Policy
from spanwarden.event_time import TimeBounds
from spanwarden.pipeline import Pipeline
from spanwarden.settings import Settings


def test_received_stamps_each_record_after_its_end_in_order_of_receipt():
    records = bench.received(bench.traffic(20, 30), delay_s=0.5)
    assert all(0 <= r.received_s - r.time_s <= 0.5 for r in records)
    assert [r.received_s for r in records] == sorted(r.received_s for r in records)


def test_served_bounds_judge_every_record_as_the_unbounded_run_does():
    """Held for the lateness bound, stamped out of order by their receipt, judged at most 128 per step: once
    the clock passes the bound every record was judged, and the detectors learned exactly what they learn
    from the records in order with nothing held."""
    records = bench.traffic(60, 40)
    settings = Settings()
    plain = Pipeline(Policy.load(None), MemoryAuditSink())
    held = Pipeline(Policy.load(None), MemoryAuditSink(),
                    time_bounds=TimeBounds(settings.max_lateness_s, settings.max_skew_s))
    held.judge_limit = bench.SERVE_JUDGE_LIMIT
    stamped = bench.received(records)
    assert stamped != sorted(stamped, key=lambda r: r.end_ns)  # some arrive out of event-time order
    for start in range(0, len(records), 128):
        plain.process(records[start:start + 128])
        held.process(stamped[start:start + 128])
        while held.backlog():
            held.judge_due()
    assert held.arrivals.pending  # the last lateness bound's records are still held ...
    held.advance(stamped[-1].received_s + settings.max_lateness_s + 1)
    assert not held.arrivals.pending  # ... until the clock passes it
    assert held.detect.to_state() == plain.detect.to_state()
