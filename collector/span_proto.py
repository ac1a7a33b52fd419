"""The parts of OTLP spans the normaliser reads, through protobuf's Python objects: the reader of the Python
source build. Interpreted, walking the wire bytes (collector/span_wire.py) costs more than upb's own access;
compiled, it costs far less. Both give the same `SpanFields` (tests/collector/test_normalize_equivalence.py
holds both to the saved records)."""

from __future__ import annotations

from typing import Any

from spanwarden.collector.attributes import UNCUT
from spanwarden.collector.span_wire import MAX_TEXT, MAX_TOKENS, SpanFields, count

_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def read_span(span: Any, wanted: dict[str, tuple[str, int, str]], flags: list[str]) -> SpanFields:
    """As span_wire.read_span, of a Span message (its place fields are 0)."""
    status = span.status
    return (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), span.name,
            span.start_time_unix_nano, span.end_time_unix_nano, status.code, pick(span.attributes, wanted, flags),
            0, 0)


def pick(kvs: Any, wanted: dict[str, tuple[str, int, str]], flags: list[str]) -> dict[str, Any]:
    """The wanted attributes as plain values under their canonical names (as span_wire.pick files them)."""
    out: dict[str, Any] = {}
    alias_ranks: dict[str, int] = {}
    for kv in kvs:
        found = wanted.get(kv.key)
        if found is None:
            continue
        canonical, rank, expected = found
        if rank or canonical in out:  # an alias: keep the newest name's value
            if rank >= alias_ranks.get(canonical, 0 if canonical in out else rank + 1):
                continue
            alias_ranks[canonical] = rank
        value = kv.value
        v = getattr(value, expected)  # the conventional type, read without asking which one is set
        if not v:  # empty or zero: maybe another type was sent, or nothing
            kind = value.WhichOneof("value")
            if kind not in _SCALARS:
                continue
            v = getattr(value, kind)
        if expected == "string_value":
            if v.__class__ is not str:
                v = str(v)
            if len(v) > MAX_TEXT and canonical not in UNCUT:
                flags.append(f"truncated:{canonical}")
                v = v[:MAX_TEXT]
        elif expected == "int_value" and (v.__class__ is not int or not 0 <= v <= MAX_TOKENS):
            v = count(v, flags, canonical)
        out[canonical] = v
    return out


def token_like(kvs: Any) -> bool:
    """A token count under a name no convention here knows (aggregates aside): usage spanwarden cannot read."""
    return any(("token" in kv.key and "aggregated" not in kv.key) for kv in kvs)
