"""OTLP spans to `SpanRecord`s: identity from the resource, GenAI usage and cost, the resource touched.

Only the attributes spanwarden reads are looked at (a set lookup per attribute key), which is what keeps
ingest fast. Nothing drops a span: missing identity becomes the `unknown` agent, and values that make no
sense (non-numeric or negative token counts, negative durations, oversized strings) are zeroed or cut and
named in the record's `flags`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.collector import attributes as A
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord

MAX_TEXT = 256  # longest identity/name string kept in a record; longer ones are cut and flagged
MAX_TOKENS = 100_000_000  # more tokens than any model takes in one call: a telemetry bug, not spend
_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


def _key(names: str | tuple[str, ...]) -> str:
    return names if isinstance(names, str) else names[0]


# Canonical attribute names: `_pick` files every alias under these.
K_AGENT_ID, K_AGENT_NAME, K_OWNER, K_TEAM = _key(A.AGENT_ID), _key(A.AGENT_NAME), _key(A.OWNER), _key(A.TEAM)
K_OPERATION, K_PROVIDER, K_ERROR = _key(A.OPERATION), _key(A.PROVIDER), _key(A.ERROR_TYPE)
K_RESPONSE_MODEL, K_REQUEST_MODEL = _key(A.RESPONSE_MODEL), _key(A.REQUEST_MODEL)
K_IN, K_OUT, K_CACHED = _key(A.INPUT_TOKENS), _key(A.OUTPUT_TOKENS), _key(A.CACHED_TOKENS)
K_PROMPT = _key(A.INPUT_MESSAGES)
K_COST, K_TOOL, K_ARGS, K_CONV = _key(A.REPORTED_COST), _key(A.TOOL_NAME), _key(A.TOOL_ARGUMENTS), _key(
    A.CONVERSATION_ID)
K_FINGERPRINT, K_RESOURCE, K_ROWS, K_BYTES = _key(A.FINGERPRINT), _key(A.RESOURCE), _key(A.ROWS), _key(A.BYTES)
K_DB_SYSTEM, K_DB_COLLECTION, K_DB_NAMESPACE = _key(A.DB_SYSTEM), _key(A.DB_COLLECTION), _key(A.DB_NAMESPACE)
K_DESTINATION, K_FILE, K_SERVER, K_URL = (_key(A.MESSAGING_DESTINATION), _key(A.FILE_PATH),
                                          _key(A.SERVER_ADDRESS), _key(A.URL_FULL))


class Normalizer:
    """Turns decoded OTLP requests into records; holds the price table (the only state)."""

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices

    def records(self, request: ExportTraceServiceRequest) -> list[SpanRecord]:
        return list(self.iter_records(request))

    def iter_records(self, request: ExportTraceServiceRequest) -> Iterator[SpanRecord]:
        for resource_spans in request.resource_spans:
            identity = _resource_identity(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    yield self._record(span, identity)

    def _record(self, span: Any, identity: dict[str, str]) -> SpanRecord:
        flags: list[str] = []
        a = _pick(span.attributes, A.SPAN_KEYS, flags)
        start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
        if end_ns < start_ns:
            flags.append("negative_duration")
        status_error = span.status.code == _STATUS_ERROR
        error_type = a.get(K_ERROR, "")
        model = a.get(K_RESPONSE_MODEL) or a.get(K_REQUEST_MODEL, "")
        input_tokens, output_tokens, cached_tokens = a.get(K_IN, 0), a.get(K_OUT, 0), a.get(K_CACHED, 0)
        cost, cost_source = self._cost(a.get(K_COST), model, input_tokens, output_tokens, cached_tokens, flags)
        tool_name = a.get(K_TOOL, "")
        name = span.name
        if len(name) > MAX_TEXT:
            name = name[:MAX_TEXT]
            flags.append("truncated_name")
        return SpanRecord(
            span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), name, start_ns, end_ns,
            status_error or bool(error_type), error_type or ("error" if status_error else ""),
            _agent_id(a, identity, flags), a.get(K_OWNER) or identity["owner"], a.get(K_TEAM) or identity["team"],
            identity["environment"], identity["version"], a.get(K_OPERATION, ""), a.get(K_PROVIDER, ""), model,
            input_tokens, output_tokens, cached_tokens, cost, cost_source, tool_name, _resource(a, flags),
            a.get(K_ROWS, 0), a.get(K_BYTES, 0), _fingerprint(a, tool_name, model), a.get(K_CONV, ""),
            tuple(flags),
        )

    def _cost(self, reported: Any, model: str, inp: int, out: int, cached: int,
              flags: list[str]) -> tuple[float, str]:
        if reported is not None:
            if isinstance(reported, int | float) and math.isfinite(reported) and reported >= 0:
                return float(reported), "reported"
            flags.append("bad_reported_cost")
        if not model or not (inp or out):
            return 0.0, "none"
        cost, priced = self.prices.cost(model, inp, out, cached)
        if priced:
            return cost, "price_table"
        flags.append("unpriced_model")
        return cost, "default_price"


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def _pick(kvs: Any, wanted: dict[str, tuple[str, int, str]], flags: list[str]) -> dict[str, Any]:
    """The wanted attributes as plain values under their canonical names; the newest name of an attribute
    wins over its deprecated aliases. Long strings are cut to MAX_TEXT and flagged. Arrays, maps and bytes
    are skipped: spanwarden reads none."""
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
            if len(v) > MAX_TEXT and canonical not in A.UNCUT:
                flags.append(f"truncated:{canonical}")
                v = v[:MAX_TEXT]
        elif expected == "int_value" and (v.__class__ is not int or not 0 <= v <= MAX_TOKENS):
            v = _count(v, flags, canonical)
        out[canonical] = v
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _count(value: Any, flags: list[str], field: str) -> int:
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


def _resource_identity(kvs: Any) -> dict[str, str]:
    attrs = _pick(kvs, A.RESOURCE_KEYS, [])  # cut strings are flagged per span where it matters
    service = _text(attrs.get(A.SERVICE_NAME))
    if service.startswith("unknown_service"):  # the SDK's placeholder is not an identity
        service = ""
    agent = _text(attrs.get(K_AGENT_ID) or attrs.get(K_AGENT_NAME)) or service
    return {
        "agent": agent,
        "owner": _text(attrs.get(K_OWNER)),
        "team": _text(attrs.get(K_TEAM)),
        "environment": _text(attrs.get(_key(A.ENVIRONMENT))),
        "version": _text(attrs.get(A.AGENT_VERSION) or attrs.get(A.SERVICE_VERSION)),
    }


def _agent_id(a: dict[str, Any], identity: dict[str, str], flags: list[str]) -> str:
    agent = _text(a.get(K_AGENT_ID) or a.get(K_AGENT_NAME)) or identity["agent"]
    if not agent:
        flags.append("no_agent_identity")
        return UNKNOWN_AGENT
    return agent


def resource_of(attributes: Mapping[str, Any]) -> str:
    """The resource a span's attributes name, as its record will (the guard's view at span start)."""
    a: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    for name, value in attributes.items():
        alias = A.SPAN_KEYS.get(name)
        if alias is not None and alias[1] < ranks.get(alias[0], 99):
            a[alias[0]], ranks[alias[0]] = value, alias[1]
    return _resource(a, [])


def _resource(a: dict[str, Any], flags: list[str]) -> str:
    """One stable name for what the span touched: `db:<system>:<namespace>.<table>`, `http:<host>`, ..."""
    explicit = a.get(K_RESOURCE)
    if explicit:
        return _cut(_text(explicit), flags)
    collection = a.get(K_DB_COLLECTION)
    namespace = a.get(K_DB_NAMESPACE)
    if collection:
        name = f"{namespace}.{collection}" if namespace else _text(collection)
        return _cut(f"db:{a.get(K_DB_SYSTEM) or 'db'}:{name}", flags)
    destination = a.get(K_DESTINATION)
    if destination:
        return _cut(f"queue:{destination}", flags)
    path = a.get(K_FILE)
    if path:
        return _cut(f"file:{path}", flags)
    host = a.get(K_SERVER)
    if not host:
        url = a.get(K_URL)
        if isinstance(url, str) and url:
            try:
                host = urlsplit(url).hostname
            except ValueError:
                flags.append("bad_url")
    if host:
        return _cut(f"http:{host}", flags)
    if namespace:
        return _cut(f"db:{a.get(K_DB_SYSTEM) or 'db'}:{namespace}", flags)
    return ""


def _cut(text: str, flags: list[str]) -> str:
    if len(text) > MAX_TEXT:
        flags.append("truncated:resource")
        return text[:MAX_TEXT]
    return text


def _fingerprint(a: dict[str, Any], tool_name: str, model: str) -> str:
    """What makes two calls "the same call" for loop detection: tool + arguments, model + prompt, or the
    agent's own key."""
    explicit = a.get(K_FINGERPRINT)
    if explicit:
        return _text(explicit)[:64]
    if tool_name:
        arguments = a.get(K_ARGS)
        if arguments:
            digest = hashlib.blake2b(_text(arguments).encode(), digest_size=8).hexdigest()
            return f"tool:{tool_name}:{digest}"
        return f"tool:{tool_name}"
    prompt = a.get(K_PROMPT)
    if model and prompt:  # the same prompt sent again and again is a loop; a model alone is just work
        return f"prompt:{model}:{hashlib.blake2b(_text(prompt).encode(), digest_size=8).hexdigest()}"
    return f"llm:{model}" if model else ""
