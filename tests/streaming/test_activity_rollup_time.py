"""The workers' activity rollups are at the service's time, as `serve`'s journal keeps each span: a span
back- or forward-dated beyond the bounds around its receive time counts at its clamped time."""

from __future__ import annotations

from spanwarden.activity_journal import entry
from spanwarden.collector.span_record import SpanRecord
from spanwarden.event_time import TimeBounds
from spanwarden.streaming.activity_rollup import BUCKET_S, ActivityRollup
from tests.detectors.traffic import T0, make_record

BOUNDS = TimeBounds(max_lateness_s=60.0, max_skew_s=5.0)


def _records() -> list[SpanRecord]:
    received = T0 + 3600
    times = [received - 1, received - 7200, received + 900, received + 3]  # in, back-dated, ahead, in
    return [make_record(agent_id="agent-a", span_id=f"{i:016x}", end_ns=int(t * 1e9), start_ns=int((t - 1) * 1e9),
                        model="gpt-4o-mini", received_s=received,
                        **({"effect": "write", "tool_name": "sql_update"} if i == 2 else {}))
            for i, t in enumerate(times)]


def test_rollup_lines_are_at_the_clamped_times_the_embedded_journal_writes() -> None:
    records = _records()
    rollup = ActivityRollup(bounds=BOUNDS)
    rollup.add(records)
    (agent, message), = rollup.drain()
    lines = message["lines"]
    journal = sorted(entry(r, BOUNDS)["t"] for r in records)
    assert sum(line["n"] for line in lines) == len(records)
    for line in lines:  # every line's bucket holds journal times, none at the span's own time when clamped
        assert any(t - t % BUCKET_S == line["t"] - line["t"] % BUCKET_S for t in journal), (line, journal)
    assert min(line["t"] for line in lines) == journal[0] == T0 + 3600 - 60  # the back-dated one, held
    write = next(line for line in lines if line.get("effect") == "write")
    assert write["t"] == T0 + 3600 + 5  # the forward-dated write, at the skew bound


def test_trusted_span_times_are_kept_as_they_are() -> None:
    records = _records()
    rollup = ActivityRollup()
    rollup.add(records)
    lines = rollup.drain()[0][1]["lines"]
    assert min(line["t"] for line in lines) == records[1].time_s
