"""Records → OTLP → records keeps what detection reads (the replay path of the benches and Kafka tests)."""

from __future__ import annotations

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from tests.detectors.traffic import T0, merged, new_tables, normal, runaway

KEPT = ("agent_id", "owner", "team", "environment", "trace_id", "span_id", "start_ns", "end_ns", "model",
        "cost_usd", "tool_name", "resource", "rows", "is_error")


def test_detection_fields_survive_the_round_trip() -> None:
    records = merged(normal(4, 0.5), runaway(T0 + 600, 5), new_tables(T0 + 700, 3))
    back = Normalizer(PriceTable.load()).records(to_request(records))
    assert [tuple(getattr(r, f) for f in KEPT) for r in back] == [tuple(getattr(r, f) for f in KEPT)
                                                                  for r in records]
    assert [b.fingerprint for b, r in zip(back, records, strict=True) if r.fingerprint] == [
        r.fingerprint for r in records if r.fingerprint]
