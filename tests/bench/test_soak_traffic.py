"""The soak's client writes its OTLP bodies itself (spanwarden/bench/soak_traffic.py) to stay cheap; the
service must see exactly the traffic it saw when each batch was built as records and encoded with
`to_request`: the same bytes, batch after batch, tool calls, costs, rows and errors alike."""

from __future__ import annotations

from spanwarden.bench.soak_traffic import AgentTraffic
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import SpanRecord


def test_bodies_are_the_bytes_to_request_writes_for_the_same_batches() -> None:
    seen: list[SpanRecord] = []
    for i in range(30):
        as_records, as_body = AgentTraffic(f"soak-{i:05d}", 7), AgentTraffic(f"soak-{i:05d}", 7)
        for k in range(4):
            now = 1_900_000_000.0 + 10 * k + i / 7
            batch = as_records.batch(100, now)
            seen.extend(batch)
            assert as_body.body(100, now) == to_request(batch).SerializeToString(), (i, k)
        assert as_body.t == as_records.t and as_body.n == as_records.n
    # the comparison covered every kind of span the soak sends
    assert any(r.is_error for r in seen) and any(r.rows == 0 and r.tool_name for r in seen)
    assert {len(r.fingerprint) for r in seen if r.fingerprint} >= {20, 21}
    assert any(r.cost_usd > 0 for r in seen) and any(r.tool_name for r in seen)


def test_without_a_clock_the_bodies_follow_the_agents_own_time_too() -> None:
    as_records, as_body = AgentTraffic("soak-00001", 0), AgentTraffic("soak-00001", 0)
    for _ in range(3):
        assert as_body.body(50) == to_request(as_records.batch(50)).SerializeToString()
