"""The records topic's message: one agent's normalised records, grouped by the spans-topic message they
came from. The source position travels with them so a replay after a crash is recognised and skipped.

Format 2 (written now) is columnar: per source, each SpanRecord field once, as one value when every record
of the source has it (an agent's identity, its provider, most flags and defaults) or as a list of the
records' values. Decoding builds the records with one C-level `zip` instead of a Python call per record
(format 1, a row per record, cost ~4x more to decode). Format 1 is still read: a message in flight when the
workers are upgraded."""

from __future__ import annotations

from itertools import repeat
from typing import Any, NamedTuple

import orjson

from spanwarden.collector.span_record import SpanRecord

FORMAT_VERSION = 2
ROWS_VERSION = 1  # one array of fields per record: what spanwarden wrote before the columns
_FIELDS = len(SpanRecord._fields)
_FLAGS = SpanRecord._fields.index("flags")
_DEFAULTS = SpanRecord._field_defaults
_new_tuple = tuple.__new__
_NUMBERS = (int, float, bool)


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
    """`{"v": 2, "fields": n, "sources": [[partition, offset, part, count, same, varying], ...]}`: `same`
    is `[[field index, value], ...]` for the fields every record shares, `varying` `[[field index, [values
    in order]], ...]` for the others."""
    message = {"v": FORMAT_VERSION, "fields": _FIELDS,
               "sources": [[s.partition, s.offset, s.part, len(s.records), *_columns(s.records)] for s in sources]}
    return orjson.dumps(message)


def _columns(records: list[SpanRecord]) -> tuple[list[list[Any]], list[list[Any]]]:
    same: list[list[Any]] = []
    varying: list[list[Any]] = []
    if not records:
        return same, varying
    n = len(records)
    for index, column in enumerate(zip(*records, strict=True)):
        first = column[0]
        # `count` compares with ==, so 1, 1.0 and True pass for one another: a number is one value only
        # when every record has it as the same type
        if column.count(first) == n and (first.__class__ not in _NUMBERS or len(set(map(type, column))) == 1):
            same.append([index, first])
        else:
            varying.append([index, column])
    return same, varying


def decode(payload: bytes) -> list[SourceRecords]:
    try:
        message = orjson.loads(payload)
        version = message.get("v")
        if version == FORMAT_VERSION:
            fields = message["fields"]
            if not isinstance(fields, int) or fields > _FIELDS or fields <= _FLAGS:
                raise RecordBatchError(f"a record has {fields} fields, expected {_FIELDS}")
            return [SourceRecords(int(p), int(o), int(part), _records(int(n), same, varying, fields))
                    for p, o, part, n, same, varying in message["sources"]]
        if version == ROWS_VERSION:
            return [SourceRecords(int(p), int(o), int(part), [_record(row) for row in rows])
                    for p, o, part, rows in message["sources"]]
        raise RecordBatchError(f"records message version {version!r}, expected {FORMAT_VERSION}")
    except RecordBatchError:
        raise
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise RecordBatchError(f"malformed records message: {exc}") from exc


def _records(n: int, same: list[list[Any]], varying: list[list[Any]], fields: int) -> list[SpanRecord]:
    """A source's records from its columns; fields past `fields` (a writer older than SpanRecord's newest
    fields) take their defaults."""
    if n == 0:
        return []
    columns: list[Any] = [None] * _FIELDS
    for index, value in same:
        _check(index, fields)
        columns[index] = repeat(tuple(value) if index == _FLAGS else value, n)
    for index, values in varying:
        _check(index, fields)
        if len(values) != n:
            raise RecordBatchError(f"malformed records message: a column of {len(values)} values for {n} records")
        columns[index] = map(tuple, values) if index == _FLAGS else values
    for index in range(fields, _FIELDS):
        name = SpanRecord._fields[index]
        if name not in _DEFAULTS:
            raise RecordBatchError(f"a record has {fields} fields, expected {_FIELDS}")
        columns[index] = repeat(_DEFAULTS[name], n)
    if any(c is None for c in columns):
        raise RecordBatchError("malformed records message: not every field of a record")
    return list(map(_new_tuple, repeat(SpanRecord, n), zip(*columns, strict=True)))


def _check(index: int, fields: int) -> None:
    if index.__class__ is not int or not 0 <= index < fields:
        raise RecordBatchError(f"malformed records message: a column for field {index!r} of {fields}")


def _record(row: list[object]) -> SpanRecord:
    if len(row) != _FIELDS:
        row = _upgraded(row)
    row[_FLAGS] = tuple(row[_FLAGS])  # type: ignore[arg-type]  # flags
    return _new_tuple(SpanRecord, row)  # type: ignore[no-any-return]  # SpanRecord(*row) without the call cost


def _upgraded(row: list[object]) -> list[object]:
    """A record written by an older spanwarden: SpanRecord's new fields are added last, each with a default,
    so a shorter row (a message in flight across an upgrade) takes the defaults for the fields it lacks."""
    missing = SpanRecord._fields[len(row):]
    if not missing or any(f not in _DEFAULTS for f in missing):
        raise RecordBatchError(f"a record has {len(row)} fields, expected {_FIELDS}")
    return [*row, *(_DEFAULTS[f] for f in missing)]
