"""The records topic's message: one agent's normalised records, grouped by the spans-topic message they
came from. The source position travels with them so a replay after a crash is recognised and skipped."""

from __future__ import annotations

from typing import NamedTuple

import orjson

from spanwarden.collector.span_record import SpanRecord

FORMAT_VERSION = 1
_FIELDS = len(SpanRecord._fields)
_FLAGS = SpanRecord._fields.index("flags")
_DEFAULTS = SpanRecord._field_defaults


class RecordBatchError(ValueError):
    """A records message that is not one spanwarden wrote (wrong format or version)."""


class SourceRecords(NamedTuple):
    """Records from one spans-topic message: partition, offset and part (a message too large for one
    records message is cut into parts) are the idempotence key."""

    partition: int
    offset: int
    part: int
    records: list[SpanRecord]

    @property
    def position(self) -> tuple[int, int]:
        return (self.offset, self.part)


def encode(sources: list[SourceRecords]) -> bytes:
    # orjson writes a tuple subclass (SpanRecord) through `default`, as a plain tuple: an array of fields
    message = {"v": FORMAT_VERSION, "sources": [[s.partition, s.offset, s.part, s.records] for s in sources]}
    return orjson.dumps(message, option=orjson.OPT_PASSTHROUGH_SUBCLASS, default=tuple)


def decode(payload: bytes) -> list[SourceRecords]:
    try:
        message = orjson.loads(payload)
        if message.get("v") != FORMAT_VERSION:
            raise RecordBatchError(f"records message version {message.get('v')!r}, expected {FORMAT_VERSION}")
        return [SourceRecords(int(p), int(o), int(part), [_record(row) for row in rows])
                for p, o, part, rows in message["sources"]]
    except RecordBatchError:
        raise
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RecordBatchError(f"malformed records message: {exc}") from exc


def _record(row: list[object]) -> SpanRecord:
    if len(row) != _FIELDS:
        row = _upgraded(row)
    row[_FLAGS] = tuple(row[_FLAGS])  # type: ignore[arg-type]  # flags
    return _new_tuple(SpanRecord, row)  # type: ignore[no-any-return]  # SpanRecord(*row) without the call cost


_new_tuple = tuple.__new__


def _upgraded(row: list[object]) -> list[object]:
    """A record written by an older spanwarden: SpanRecord's new fields are added last, each with a default,
    so a shorter row (a message in flight across an upgrade) takes the defaults for the fields it lacks."""
    missing = SpanRecord._fields[len(row):]
    if not missing or any(f not in _DEFAULTS for f in missing):
        raise RecordBatchError(f"a record has {len(row)} fields, expected {_FIELDS}")
    return [*row, *(_DEFAULTS[f] for f in missing)]
