"""The soak's agents and their traffic. `AgentTraffic.batch` gives an agent's next spans as records (for tests
and in-process feeding); `AgentTraffic.body` gives the very same spans already as an OTLP/HTTP protobuf body,
written field by field from bytes prepared once per agent, without building records or protobuf objects.

Building each span with `make_record` and `to_request` cost the soak's client ~1.6 ms of CPU per 100-span
body (41% of a core at 11,700 spans/s, on a 2-core machine whose other core serves); `body` draws the same
random numbers in the same order and writes the message `to_request` would (tests/bench/test_soak_traffic.py
holds the two equal), for a fraction of that, so the load generator no longer competes with the service."""

from __future__ import annotations

import random
import struct

from spanwarden.collector import attributes as A
from spanwarden.collector.span_record import SpanRecord, make_record

START_S = 1_800_000_000.0
BURST_S = 0.5  # an agent's batch of spans covers its last half second (under the lateness bound, 1 s in tests)
MODEL = "gpt-4o-mini"
TOOL = "sql_query"
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (`tag` is the field's key byte: number << 3 | 2)."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _kv(key: str, any_value: bytes) -> bytes:
    """A KeyValue as an attributes entry of a Span (field 9) or a Resource (field 1): the entry's own key byte
    is added by the caller."""
    return _field(0x0A, key.encode()) + _field(0x12, any_value)


def _string(key: str, value: str) -> bytes:
    return _kv(key, _field(0x0A, value.encode()))


def _int(key: str, value: int) -> bytes:
    return _kv(key, b"\x18" + _varint(value))


def _double(key: str, value: float) -> bytes:
    return _kv(key, b"\x21" + _DOUBLE.pack(value))


def _attribute(entry: bytes) -> bytes:
    return _field(0x4A, entry)  # Span.attributes


_MODEL_ATTR = _attribute(_string(A.RESPONSE_MODEL, MODEL))
_TOOL_ATTR = _attribute(_string(A.TOOL_NAME[0], TOOL))
_ERROR_STATUS = _field(0x7A, b"\x18\x02")  # Span.status = {code: STATUS_CODE_ERROR}
_ROWS_ATTRS = [_attribute(_int(A.ROWS[0], rows)) if rows else b"" for rows in range(200)]  # 0 is not written
_COST_PREFIX = _attribute(_double(A.REPORTED_COST[0], 0.0))[:-8]  # then the cost's 8 bytes
_FINGERPRINT = "tool:sql_query:"
_FINGERPRINT_PREFIX = {digits: _attribute(_string(A.FINGERPRINT, _FINGERPRINT + "0" * digits))[:-digits]
                       for digits in range(1, 7)}  # by the length of the number at its end


class AgentTraffic:
    """One agent's spans, a batch at a time, with time moving on."""

    def __init__(self, name: str, seed: int) -> None:
        self.agent = name
        self.rng = random.Random(f"{seed}:{name}")
        self.t = START_S + self.rng.uniform(0, 60)
        self.tables = [f"db:pg:app.t{k}" for k in range(self.rng.randint(2, 8))]
        self.team = f"team-{self.rng.randrange(7)}"
        self.n = 0
        self._resource: bytes | None = None
        self._table_attrs: list[bytes] = []

    def _gaps(self, size: int, now: float | None) -> list[float]:
        """`size` gaps, 5 s apart on average from the last; or, given `now` (the wall clock), a burst ending
        now, within the last BURST_S (the soak: span times are then the service's own time, within its
        lateness bound, not held to its bounds as times far from now would be)."""
        gaps = [self.rng.expovariate(1 / 5.0) for _ in range(size)]
        if now is not None:
            scale = BURST_S / sum(gaps)
            self.t = now - BURST_S
            gaps = [g * scale for g in gaps]
        return gaps

    def batch(self, size: int, now: float | None = None) -> list[SpanRecord]:
        """`size` spans as records (see `_gaps` for their times)."""
        out = []
        for gap in self._gaps(size, now):
            self.t += gap
            self.n += 1
            tool = self.rng.random() < 0.5
            out.append(make_record(
                agent_id=self.agent, team=self.team, environment="prod",
                span_id=f"{self.n:016x}", trace_id=f"{self.n:032x}", start_ns=int((self.t - 1) * 1e9),
                end_ns=int(self.t * 1e9), model=MODEL, cost_usd=0.0 if tool else
                self.rng.lognormvariate(-6, 0.7), tool_name=TOOL if tool else "",
                resource=self.rng.choice(self.tables) if tool else "", rows=self.rng.randrange(200) if tool else 0,
                fingerprint=f"{_FINGERPRINT}{self.rng.randrange(10**6)}" if tool else "",
                is_error=self.rng.random() < 0.01))
        return out

    def body(self, size: int, now: float | None = None) -> bytes:
        """The same spans as `batch(size, now)` would give (the same draws in the same order), as the
        serialised `to_request(...)` of them: one ResourceSpans for the agent, one ScopeSpans, the spans."""
        if self._resource is None:
            self._resource = _field(0x0A, b"".join(_field(0x0A, kv) for kv in (  # Resource.attributes
                _string(A.SERVICE_NAME, self.agent), _string(A.TEAM, self.team),
                _string(A.ENVIRONMENT[0], "prod"))))
            self._table_attrs = [_attribute(_string(A.RESOURCE, table)) for table in self.tables]
        rng, tables = self.rng, self._table_attrs
        spans = []
        for gap in self._gaps(size, now):
            self.t += gap
            self.n += 1
            n = self.n
            ids = b"\x0a\x10" + n.to_bytes(16, "big") + b"\x12\x08" + n.to_bytes(8, "big")
            times = b"\x39" + _FIXED64.pack(int((self.t - 1) * 1e9)) + b"\x41" + _FIXED64.pack(int(self.t * 1e9))
            if rng.random() < 0.5:  # a tool call: the table, rows and fingerprint (drawn in that order)
                table = rng.choice(tables)
                rows = rng.randrange(200)
                number = b"%d" % rng.randrange(10**6)
                attrs = (_MODEL_ATTR + _TOOL_ATTR + table + _FINGERPRINT_PREFIX[len(number)] + number
                         + _ROWS_ATTRS[rows])
            else:
                attrs = _MODEL_ATTR + _COST_PREFIX + _DOUBLE.pack(rng.lognormvariate(-6, 0.7))
            status = _ERROR_STATUS if rng.random() < 0.01 else b""
            spans.append(_field(0x12, ids + times + attrs + status))  # ScopeSpans.spans
        scope = _field(0x12, b"".join(spans))  # ResourceSpans.scope_spans
        return _field(0x0A, self._resource + scope)  # ExportTraceServiceRequest.resource_spans
