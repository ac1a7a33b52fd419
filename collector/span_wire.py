"""The parts of OTLP spans the normaliser reads, straight from the protobuf wire format.

Reading a decoded request through protobuf's Python objects costs ~0.5 us per attribute (each KeyValue,
its key and its AnyValue become Python objects on access), most of a span's normalising: the request is
serialised once instead (upb writes it in a few hundred ns per span) and walked here. Only the wanted
attributes' values are read; every other attribute is one length skip. The bytes are protobuf's own
serialisation of a parsed message, so well formed and valid UTF-8; the readers still follow protobuf's
rules for any order of fields, repeated singular fields (the last wins, messages merge) and unknown ones.

Field numbers are opentelemetry-proto's (trace/v1/trace.proto, common/v1/common.proto); a test holds them
to the generated descriptors.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

from spanwarden.collector.attributes import UNCUT

MAX_TEXT: Final = 256  # longest identity/name string kept in a record; longer ones are cut and flagged
MAX_TOKENS: Final = 100_000_000  # more tokens than any model takes in one call: a telemetry bug, not spend
_DOUBLE = struct.Struct("<d")
_SIGN: Final = 1 << 63
_WRAP: Final = 1 << 64
_UINT32: Final = 0xFFFFFFFF
# AnyValue's `value` oneof: 1 string, 2 bool, 3 int, 4 double; 5 array, 6 kvlist, 7 bytes and 8
# string_value_strindex are no scalar (skipped). Other field numbers are not in the oneof.
_ONEOF_LAST: Final = 8

Wanted = dict[bytes, tuple[str, int, str]]
SpanFields = tuple[str, str, str, str, int, int, int, dict[str, Any], int, int]


def varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, position after it)."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def skip(data: bytes, at: int, wire_type: int) -> int:
    """The position after a field's value of this wire type."""
    if wire_type == 0:
        while data[at] & 0x80:
            at += 1
        return at + 1
    if wire_type == 2:
        size, at = varint(data, at)
        return at + size
    if wire_type == 1:
        return at + 8
    if wire_type == 5:
        return at + 4
    if wire_type == 3:  # a group: its fields up to the matching end-group tag
        while True:
            tag, at = varint(data, at)
            if tag & 7 == 4:
                return at
            at = skip(data, at, tag & 7)
    raise ValueError(f"protobuf wire type {wire_type} is not valid")


def regions(data: bytes, start: int, end: int, field: int) -> list[tuple[int, int]]:
    """(start, end) of every length-delimited `field` in data[start:end], in order."""
    out: list[tuple[int, int]] = []
    at = start
    while at < end:
        tag, at = varint(data, at)
        if tag >> 3 == field and tag & 7 == 2:
            size, at = varint(data, at)
            out.append((at, at + size))
            at += size
        else:
            at = skip(data, at, tag & 7)
    return out


def read_span(data: bytes, at: int, end: int, wanted: Wanted, flags: list[str]) -> SpanFields:
    """(trace id hex, span id hex, parent id hex, name, start ns, end ns, status code, the wanted
    attributes by canonical name, and where the span is) of the Span in data[at:end]."""
    start = at
    trace_id = span_id = parent_id = b""
    name = ""
    start_ns = end_ns = code = 0
    out: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    while at < end:
        tag = data[at]
        at += 1
        if tag == 0x4A:  # attributes (9): a KeyValue
            size = data[at]
            if size < 0x80:
                at += 1
            else:
                size, at = varint(data, at)
            stop = at + size
            if at < stop and data[at] == 0x0A:  # its key first, as protobuf writes it
                size = data[at + 1]
                if size < 0x80:
                    key_at = at + 2
                else:
                    size, key_at = varint(data, at + 1)
                found = wanted.get(data[key_at:key_at + size])
                if found is not None:
                    pick(data, key_at + size, stop, found, flags, out, ranks)
            else:
                key, value_at = _key_value(data, at, stop)
                found = wanted.get(key)
                if found is not None:
                    pick(data, value_at, stop, found, flags, out, ranks)
            at = stop
        elif tag == 0x41:  # end_time_unix_nano (8, fixed64)
            end_ns = int.from_bytes(data[at:at + 8], "little")
            at += 8
        elif tag == 0x39:  # start_time_unix_nano (7, fixed64)
            start_ns = int.from_bytes(data[at:at + 8], "little")
            at += 8
        elif tag == 0x0A or tag == 0x12 or tag == 0x22 or tag == 0x2A or tag == 0x7A:
            size, at = varint(data, at)
            if tag == 0x0A:
                trace_id = data[at:at + size]
            elif tag == 0x12:
                span_id = data[at:at + size]
            elif tag == 0x22:
                parent_id = data[at:at + size]
            elif tag == 0x2A:
                name = data[at:at + size].decode()
            else:  # status (15): messages merge, its code (3) last wins
                code = _status_code(data, at, at + size, code)
            at += size
        else:
            full, at = varint(data, at - 1)
            at = skip(data, at, full & 7)
    return (trace_id.hex(), span_id.hex(), parent_id.hex(), name, start_ns, end_ns, code, out, start, end)


def _status_code(data: bytes, at: int, end: int, code: int) -> int:
    while at < end:
        tag, at = varint(data, at)
        if tag == 0x18:
            value, at = varint(data, at)
            code = value & _UINT32
            if code >= 1 << 31:
                code -= 1 << 32
        else:
            at = skip(data, at, tag & 7)
    return code


def _key_value(data: bytes, at: int, end: int) -> tuple[bytes, int]:
    """A KeyValue written in another order: (its key, where to look for its value: the whole entry)."""
    key, start = b"", at
    while at < end:
        tag, at = varint(data, at)
        if tag == 0x0A:
            size, at = varint(data, at)
            key = data[at:at + size]
            at += size
        else:
            at = skip(data, at, tag & 7)
    return key, start


def pick(data: bytes, at: int, end: int, found: tuple[str, int, str], flags: list[str], out: dict[str, Any],
         ranks: dict[str, int]) -> None:
    """File one wanted attribute (its KeyValue's fields from `at`) under its canonical name, as protobuf
    access did: the newest name of an attribute wins over its deprecated aliases (an alias whose value is
    no scalar still counts as seen), strings cut to MAX_TEXT and flagged, counts checked."""
    canonical, rank, expected = found
    if rank or canonical in out:  # an alias: keep the newest name's value
        if rank >= ranks.get(canonical, 0 if canonical in out else rank + 1):
            return
        ranks[canonical] = rank
    v: Any = None
    size = end - at - 2
    if 2 <= size < 0x80 and data[at] == 0x12 and data[at + 1] == size:  # one short value, last, as written
        tag = data[at + 2]
        if tag == 0x0A and data[at + 3] == size - 2:  # string_value (1)
            v = data[at + 4:end].decode()
        elif tag == 0x18:  # int_value (3)
            number, after = varint(data, at + 3)
            if after == end:
                number &= _WRAP - 1
                v = number - _WRAP if number >= _SIGN else number
    if v is None:
        v = _scalar(data, at, end)
        if v is None:
            return
    if expected == "string_value":
        if v.__class__ is not str:
            v = str(v)
        if len(v) > MAX_TEXT and canonical not in UNCUT:
            flags.append(f"truncated:{canonical}")
            v = v[:MAX_TEXT]
    elif expected == "int_value" and (v.__class__ is not int or not 0 <= v <= MAX_TOKENS):
        v = count(v, flags, canonical)
    out[canonical] = v


def _scalar(data: bytes, at: int, end: int) -> str | int | float | bool | None:
    """The scalar of the KeyValue's value (2; messages merge: the last oneof member wins), None when it is
    none (arrays, maps, bytes, nothing: spanwarden reads none)."""
    which, value_at, value_end = 0, 0, 0
    while at < end:
        tag = data[at]
        if tag == 0x12:
            size, at = varint(data, at + 1)
            which, value_at, value_end = _any_value(data, at, at + size, which, value_at, value_end)
            at += size
        else:
            tag, at = varint(data, at)
            at = skip(data, at, tag & 7)
    if which == 1:
        return data[value_at:value_end].decode()
    if which == 3:
        number = varint(data, value_at)[0] & (_WRAP - 1)
        return number - _WRAP if number >= _SIGN else number
    if which == 4:
        double: float = _DOUBLE.unpack_from(data, value_at)[0]
        return double
    if which == 2:
        return varint(data, value_at)[0] != 0
    return None


def _any_value(data: bytes, at: int, end: int, which: int, value_at: int, value_end: int) -> tuple[int, int, int]:
    while at < end:
        tag, at = varint(data, at)
        field, wire_type = tag >> 3, tag & 7
        after = skip(data, at, wire_type)
        if 1 <= field <= _ONEOF_LAST:
            which, value_at, value_end = field, at, after
            if wire_type == 2:
                _, value_at = varint(data, at)  # the string's bytes, after their length
        at = after
    return which, value_at, value_end


def count(value: Any, flags: list[str], field: str) -> int:
    """A non-negative integer count; anything else is zeroed and flagged."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        flags.append(f"bad_{field}")
        return 0
    try:
        number = float(value)
    except ValueError:
        flags.append(f"bad_{field}")
        return 0
    if not math.isfinite(number) or number < 0:
        flags.append(f"bad_{field}")
        return 0
    if number > MAX_TOKENS and field.endswith("tokens"):
        flags.append(f"absurd_{field}")
        return 0
    return int(number)


def attributes(data: bytes, resources: list[tuple[int, int]], wanted: Wanted) -> dict[str, Any]:
    """The wanted attributes of a Resource (written as these regions: messages merge; its attributes are
    field 1), strings cut unflagged."""
    out: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    flags: list[str] = []
    for at, end in resources:
        for entry_at, entry_end in regions(data, at, end, 1):
            key, value_at = _key_value(data, entry_at, entry_end)
            found = wanted.get(key)
            if found is not None:
                pick(data, value_at, entry_end, found, flags, out, ranks)
    return out


def token_like(data: bytes, at: int, end: int) -> bool:
    """A span's attribute (field 9) keyed with a token count under a name no convention here knows
    (aggregates aside). Keys are UTF-8: an ASCII word is in the bytes exactly when it is in the text."""
    for entry_at, entry_end in regions(data, at, end, 9):
        key, _ = _key_value(data, entry_at, entry_end)
        if b"token" in key and b"aggregated" not in key:
            return True
    return False
