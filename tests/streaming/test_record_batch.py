"""Records messages: what one stage writes the next reads back exactly; anything else is a clear error."""

from __future__ import annotations

import orjson
import pytest

from spanwarden.collector.span_record import make_record
from spanwarden.streaming.record_batch import RecordBatchError, SourceRecords, decode, encode
from spanwarden.streaming.span_splitter import pack


def test_round_trip_keeps_records_and_positions() -> None:
    records = [make_record(agent_id="a", cost_usd=0.25, flags=("unpriced_model",), rows=7, end_ns=5),
               make_record(agent_id="a", is_error=True, error_type="Timeout")]
    sources = [SourceRecords(3, 41, 0, records[:1]), SourceRecords(3, 42, 1, records[1:]),
               SourceRecords(3, 43, 0, [])]
    assert decode(encode(sources)) == sources


def test_round_trip_keeps_each_value_and_its_type() -> None:
    """Columns shared by every record go once; one that only looks shared (1, 1.0 and True are equal in
    Python) keeps each record's own value and type."""
    records = [make_record(agent_id="a", team="t", rows=1, cost_usd=1.0, flags=("x", "y"), received_s=2.5),
               make_record(agent_id="a", team="t", rows=1, cost_usd=1, flags=("x", "y"), received_s=2.5,
                           is_error=True),
               make_record(agent_id="a", team="t", rows=True, cost_usd=1.0, flags=(), received_s=2.5)]
    [source] = decode(encode([SourceRecords(0, 7, 0, records)]))
    assert source.records == records
    assert [tuple(map(type, r)) for r in source.records] == [tuple(map(type, r)) for r in records]
    assert all(isinstance(r.flags, tuple) for r in source.records)


def test_records_written_as_rows_by_an_older_worker_still_decode() -> None:
    records = [make_record(agent_id="a", cost_usd=0.25, flags=("unpriced_model",)), make_record(agent_id="a")]
    rows = orjson.dumps({"v": 1, "sources": [[2, 5, 0, records]]}, option=orjson.OPT_PASSTHROUGH_SUBCLASS,
                        default=tuple)
    assert decode(rows) == [SourceRecords(2, 5, 0, records)]


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", orjson.dumps({"v": 99, "sources": []}),
                                     orjson.dumps({"v": 2, "fields": 37, "sources": [[0, 1, 0, 2, [], []]]}),
                                     orjson.dumps({"v": 2, "fields": 37,
                                                   "sources": [[0, 1, 0, 2, [[-1, "a"]], []]]}),
                                     orjson.dumps({"v": 2, "fields": 37,
                                                   "sources": [[0, 1, 0, 2, [], [[3, ["a"]]]]]}),
                                     orjson.dumps({"v": 1, "sources": [[0, 1, 0, [[1, 2, 3]]]]}),
                                     orjson.dumps({"v": 1, "sources": [[0, 1]]})])
def test_foreign_messages_are_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(RecordBatchError, match="records message|fields"):
        decode(payload)


def test_records_written_before_an_upgrade_take_the_new_fields_defaults() -> None:
    """A records message in flight when the workers are upgraded: SpanRecord grew three fields (the effect,
    its summary, the approval) at its end; an older, shorter row still decodes."""
    record = make_record(agent_id="a", cost_usd=0.5, flags=("x",), effect="write", effect_summary="INSERT t")
    old = [list(record)[:-3]]  # as spanwarden wrote it before the effect fields
    [source] = decode(orjson.dumps({"v": 1, "sources": [[0, 9, 0, old]]}))
    assert source.records == [record._replace(effect="", effect_summary="", approval="")]
    longer = [[*list(record), "from a newer spanwarden"]]
    with pytest.raises(RecordBatchError, match="fields"):
        decode(orjson.dumps({"v": 1, "sources": [[0, 9, 0, longer]]}))


def test_columns_written_before_an_upgrade_take_the_new_fields_defaults() -> None:
    record = make_record(agent_id="a", cost_usd=0.5, flags=("x",), effect="write", effect_summary="INSERT t")
    message = orjson.loads(encode([SourceRecords(0, 9, 0, [record, record])]))
    fields = message["fields"]
    message["fields"] = fields - 3  # as a spanwarden before the effect fields wrote it
    for source in message["sources"]:
        source[4] = [c for c in source[4] if c[0] < fields - 3]
        source[5] = [c for c in source[5] if c[0] < fields - 3]
    [source] = decode(orjson.dumps(message))
    assert source.records == [record._replace(effect="", effect_summary="", approval="")] * 2
    message["fields"] = fields + 1
    with pytest.raises(RecordBatchError, match="fields"):
        decode(orjson.dumps(message))


def test_pack_keeps_order_and_respects_the_size_limit() -> None:
    sources = [SourceRecords(0, i, 0, [make_record(agent_id="a")] * n) for i, n in enumerate([3, 3, 1, 5, 2])]
    messages = pack(sources, max_records=6)
    assert [[s.offset for s in m] for m in messages] == [[0, 1], [2, 3], [4]]
    assert [s for m in messages for s in m] == sources
