"""OTLP spans to `SpanRecord`s: identity from the resource, GenAI usage and cost, the resource touched.

Only the attributes spanwarden reads are looked at (a lookup per attribute key: on the request's wire bytes
when that reader is compiled, collector/span_wire.py, else through protobuf's objects, span_proto.py), and a
resource's identity is worked out once per distinct resource: that is what keeps ingest fast. Nothing drops
a span: missing identity becomes the `unknown` agent, and values that make no sense (non-numeric or negative
token counts, negative durations, oversized strings) are zeroed or cut and named in the record's `flags`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.collector import agent_identity, effects, span_kind, span_proto, span_resource
from spanwarden.collector import attributes as A
from spanwarden.collector import span_wire as wire
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import LLM_OPERATIONS, UNKNOWN_AGENT, SpanRecord

MAX_TEXT, MAX_TOKENS = wire.MAX_TEXT, wire.MAX_TOKENS  # strings cut past MAX_TEXT; counts past MAX_TOKENS zeroed
_MAX_IDENTITIES = 4096  # distinct resources remembered
WIRE_COMPILED = str(getattr(wire, "__file__", "")).endswith(tuple(EXTENSION_SUFFIXES))
_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


def _key(names: str | tuple[str, ...]) -> str:
    return names if isinstance(names, str) else names[0]


# Canonical attribute names: `_pick` files every alias under these.
K_AGENT_ID, K_AGENT_NAME, K_OWNER, K_TEAM = _key(A.AGENT_ID), _key(A.AGENT_NAME), _key(A.OWNER), _key(A.TEAM)
K_EXPLICIT, K_INHERITED, K_MULTI = A.EXPLICIT_AGENT, A.INHERITED_AGENT, A.MULTI_AGENT
SERVICE = ("service", "instrument")  # sources naming the agent by its service.name
K_SPAN_AGENT_NAME = _key(A.SPAN_AGENT_NAME)
K_OPERATION, K_KIND, K_PROVIDER, K_ERROR = _key(A.OPERATION), _key(A.SPAN_KIND), _key(A.PROVIDER), _key(
    A.ERROR_TYPE)
K_MODEL, K_RESPONSE_ID = _key(A.MODEL), A.RESPONSE_ID
K_IN, K_OUT, K_TOTAL = _key(A.INPUT_TOKENS), _key(A.OUTPUT_TOKENS), _key(A.TOTAL_TOKENS)
K_CACHED, K_WRITE, K_REASONING = _key(A.CACHED_TOKENS), _key(A.CACHE_WRITE_TOKENS), _key(A.REASONING_TOKENS)
K_PROMPT = _key(A.INPUT_MESSAGES)
K_OWN_COST, K_COST = A.REPORTED_COST[0], A.REPORTED_COST[1]
K_TOOL, K_ARGS, K_CONV = _key(A.TOOL_NAME), _key(A.TOOL_ARGUMENTS), _key(
    A.CONVERSATION_ID)
K_ENTITY, K_ENTITY_INPUT, K_MCP = A.ENTITY_NAME, _key(A.ENTITY_INPUT), A.MCP_METHOD
K_FINGERPRINT, K_ROWS, K_BYTES = _key(A.FINGERPRINT), _key(A.ROWS), _key(A.BYTES)


class Normalizer:
    """Turns decoded OTLP requests into records; holds the price table and the identities of the resources
    it has seen (a bounded cache of a pure function)."""

    def __init__(self, prices: PriceTable, wire_bytes: bool | None = None) -> None:
        self.prices = prices
        self._identities: dict[bytes, dict[str, str]] = {}
        # Read spans from the request's wire bytes when that reader is compiled (far cheaper than protobuf's
        # objects), through the objects when it runs as Python source (cheaper than interpreted parsing).
        self.wire_bytes = WIRE_COMPILED if wire_bytes is None else wire_bytes

    def records(self, request: ExportTraceServiceRequest) -> list[SpanRecord]:
        if not self.wire_bytes:
            return self._records_of_objects(request)
        data: bytes = request.SerializeToString()  # walked as bytes: see collector/span_wire.py
        out: list[SpanRecord] = []
        for at, end in wire.regions(data, 0, len(data), 1):  # resource_spans
            resources: list[tuple[int, int]] = []
            spans: list[tuple[int, int]] = []
            while at < end:
                tag, at = wire.varint(data, at)
                if tag == 0x0A:  # resource
                    size, at = wire.varint(data, at)
                    resources.append((at, at + size))
                    at += size
                elif tag == 0x12:  # scope_spans, with their spans (2)
                    size, at = wire.varint(data, at)
                    spans += wire.regions(data, at, at + size, 2)
                    at += size
                else:
                    at = wire.skip(data, at, tag & 7)
            identity = self._identity(data, resources)
            for span_at, span_end in spans:
                flags: list[str] = []
                out.append(self._record(wire.read_span(data, span_at, span_end, _SPAN_WANTED, flags), identity,
                                        flags, data, None))
        return out

    def _records_of_objects(self, request: ExportTraceServiceRequest) -> list[SpanRecord]:
        out: list[SpanRecord] = []
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource
            key: bytes = resource.SerializeToString()
            identity = self._identities.get(key)
            if identity is None:
                identity = self._remember(key, _resource_identity(span_proto.pick(
                    resource.attributes, A.RESOURCE_KEYS, [])))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    flags: list[str] = []
                    out.append(self._record(span_proto.read_span(span, A.SPAN_KEYS, flags), identity, flags, b"",
                                            span))
        return out

    def iter_records(self, request: ExportTraceServiceRequest) -> Iterator[SpanRecord]:
        yield from self.records(request)

    def _remember(self, key: bytes, identity: dict[str, str]) -> dict[str, str]:
        if len(self._identities) >= _MAX_IDENTITIES:
            self._identities.clear()
        self._identities[key] = identity
        return identity

    def _identity(self, data: bytes, resources: list[tuple[int, int]]) -> dict[str, str]:
        """A resource's identity, once per distinct resource (a client sends the same one with every batch)."""
        key = data[resources[0][0]:resources[0][1]] if len(resources) == 1 else b"\x00".join(
            [data[at:end] for at, end in resources])  # the rare resource written in parts
        identity = self._identities.get(key)
        if identity is None:
            identity = self._remember(key, _resource_identity(wire.attributes(data, resources, _RESOURCE_WANTED)))
        return identity

    def _record(self, span: wire.SpanFields, identity: dict[str, str], flags: list[str], data: bytes,
                message: Any) -> SpanRecord:
        trace_id, span_id, parent_id, name, start_ns, end_ns, code, a, span_at, span_end = span
        if end_ns < start_ns:
            flags.append("negative_duration")
        status_error = code == _STATUS_ERROR
        error_type = a.get(K_ERROR, "")
        kind = span_kind.kind_of(_text(a.get(K_OPERATION)), a.get(K_KIND))
        if len(name) > MAX_TEXT:
            name = name[:MAX_TEXT]
            flags.append("truncated_name")
        tool_name = span_kind.tool_of(a, kind, name, K_TOOL, K_ENTITY, K_MCP)
        if tool_name and not kind:
            kind = span_kind.TOOL
        operation = span_kind.operation_of(a.get(K_OPERATION), kind)
        model = a.get(K_MODEL, "")
        usage = usage_of(a, flags)
        llm_call = kind in (span_kind.LLM, span_kind.EMBEDDING) or operation in LLM_OPERATIONS or (
            bool(model) and kind not in _NOT_CALLS)
        own = a.get(K_OWN_COST)
        reported = a.get(K_COST) if own is None else own
        cost, cost_source = self._cost(reported, own is not None, model, usage, flags)
        if not (usage[0] or usage[1]) and reported is None and kind not in _NOT_CALLS and (
                llm_call or (not kind and (wire.token_like(data, span_at, span_end) if message is None
                                           else span_proto.token_like(message.attributes)))):
            flags.append(NO_USAGE)
        elif cost_source == "none" and (usage[0] or usage[1]):
            flags.append("usage_without_model")
        agent, source, agent_name, run_id = _agent(a, identity, kind, operation, name)
        if agent == UNKNOWN_AGENT and not agent_name and (
                source not in ("inherit", "lookup") or not parent_id):
            flags.append("no_agent_identity")
        return _new_record(SpanRecord, (
            trace_id, span_id, parent_id, name, start_ns, end_ns,
            status_error or bool(error_type), error_type or ("error" if status_error else ""),
            agent, a.get(K_OWNER) or identity["owner"], a.get(K_TEAM) or identity["team"],
            identity["environment"], identity["version"], operation, _text(a.get(K_PROVIDER)).lower(), model,
            usage[0], usage[1], usage[2], cost, cost_source, tool_name,
            span_resource.resource(a, flags, llm_call and not tool_name),
            a.get(K_ROWS, 0), a.get(K_BYTES, 0), _fingerprint(a, tool_name, model, kind), a.get(K_CONV) or run_id,
            tuple(flags), *_BETWEEN, usage[3], kind, _text(a.get(K_RESPONSE_ID)), agent_name, source,
            *_effect(a, name), *_AFTER,
        ))

    def _cost(self, reported: Any, own: bool, model: str, usage: tuple[int, int, int, int],
              flags: list[str]) -> tuple[float, str]:
        """spanwarden's own cost attribute is believed; another instrumentation's reported cost wins over the
        table when the model is unpriced or the two agree within REPORTED_COST_FACTOR."""
        inp, out, cached, written = usage
        table: tuple[float, bool] | None = None
        if model and (inp or out):
            table = self.prices.cost(model, inp, out, cached, written)
        if reported is not None:
            if not (isinstance(reported, int | float) and math.isfinite(reported) and reported >= 0):
                flags.append("bad_reported_cost")
            elif own or table is None or not table[1]:
                return float(reported), "reported"
            elif PriceTable.plausible(float(reported), table[0]):
                return float(reported), "reported"
            else:
                flags.append("implausible_reported_cost")
        if table is None:
            return 0.0, "none"
        if table[1]:
            return table[0], "price_table"
        flags.append("unpriced_model")
        return table[0], "default_price"


# Records are built as tuples (the hot path): the defaults of fields others added around this module's own.
_new_record = tuple.__new__
_FIELDS = SpanRecord._fields
_MINE = _FIELDS.index("cache_write_tokens")
_BETWEEN = tuple(SpanRecord._field_defaults[f] for f in _FIELDS[_FIELDS.index("flags") + 1:_MINE])
_AFTER = tuple(SpanRecord._field_defaults[f] for f in _FIELDS[_FIELDS.index("approval") + 1:])
NO_USAGE = "llm_without_usage"  # looks like an LLM call (a model, an LLM kind) but reports no tokens or cost
_NOT_CALLS = frozenset({*span_kind.AGGREGATE_KINDS, span_kind.TOOL})  # a model named there is not a call
_SPAN_WANTED = {name.encode(): found for name, found in A.SPAN_KEYS.items()}  # keys as they are on the wire
_RESOURCE_WANTED = {name.encode(): found for name, found in A.RESOURCE_KEYS.items()}


def _effect(a: dict[str, Any], name: str) -> tuple[str, str, str]:
    """(effect, its summary, the approval stamped by the guard): what the operation did, for the guard's
    findings, the write-volume detector and the incident report's list of writes."""
    found = effects.of_span(a, name)
    return found.kind, found.summary[:MAX_TEXT], _text(a.get(A.APPROVAL))[:64]


def usage_of(a: dict[str, Any], flags: list[str]) -> tuple[int, int, int, int]:
    """(input, output, cache read, cache write) tokens. Totals fill in only what the split leaves out;
    reasoning tokens count as output only where the output count does not already hold them."""
    inp, out, total = a.get(K_IN, 0), a.get(K_OUT, 0), a.get(K_TOTAL, 0)
    if total and not (inp or out):
        inp = total
        flags.append("usage_from_total")
    elif total and inp and not out and total > inp:
        out = total - inp
    reasoning = a.get(K_REASONING, 0)
    if reasoning and (reasoning > out or (total and total == inp + out + reasoning)):
        out += reasoning
    return inp, out, a.get(K_CACHED, 0), a.get(K_WRITE, 0)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _resource_identity(attrs: dict[str, Any]) -> dict[str, str]:
    """Who the resource's attributes say the agent is (cut strings are flagged per span where it matters)."""
    service = _text(attrs.get(A.SERVICE_NAME))
    if service.startswith("unknown_service"):  # the SDK's placeholder is not an identity
        service = ""
    explicit = agent_identity.stable(_text(attrs.get(K_EXPLICIT)))
    declared = agent_identity.stable(_text(attrs.get(K_AGENT_ID))) or agent_identity.stable(
        _text(attrs.get(K_AGENT_NAME)))
    by_service = "instrument" if _text(attrs.get(A.AGENT_ID_FROM)) == "instrument" else "service"
    agent, source = ((explicit, "explicit") if explicit else (declared, "resource") if declared
                     else (service, by_service) if service else (UNKNOWN_AGENT, "unknown"))
    return {
        "agent": agent,
        "source": source,
        "multi_agent": "1" if _text(attrs.get(K_MULTI)).lower() in ("true", "1", "yes") else "",
        "owner": _text(attrs.get(K_OWNER)),
        "team": _text(attrs.get(K_TEAM)),
        "environment": _text(attrs.get(_key(A.ENVIRONMENT))),
        "version": _text(attrs.get(A.AGENT_VERSION) or attrs.get(A.SERVICE_VERSION)),
    }


def _agent(a: dict[str, Any], identity: dict[str, str], kind: str, operation: str,
           span_name: str) -> tuple[str, str, str, str]:
    """(agent id, its source, the stable agent name this span is or is under, a per-run id), by the rule
    in collector/agent_identity.py. Source "agent_span", "inherit" (waits for its agent span) or "lookup"
    (takes an agent span's name only if already seen) asks the trace stage to finish it."""
    own_id, own_name, explicit = a.get(K_AGENT_ID), a.get(K_SPAN_AGENT_NAME), a.get(K_EXPLICIT)
    base, source = identity["agent"], identity["source"]
    final = source in ("explicit", "resource") or (source in SERVICE and not identity["multi_agent"])
    if not (own_id or own_name or explicit or K_INHERITED in a) and kind != span_kind.AGENT:
        if final:
            return base, source, "", ""  # the common case
        # Without any identity and without an agent hint on the span, only an ancestor already seen names it.
        return base, ("inherit" if identity["multi_agent"] else "lookup"), "", ""
    own_id, own_name = _text(own_id), _text(own_name)
    run_id = next((v for v in (own_id, own_name) if v and agent_identity.is_per_run_id(v)), "")
    explicit = agent_identity.stable(_text(explicit))
    if explicit:
        return explicit, "explicit", "", run_id
    name = (agent_identity.agent_span_name(span_name, operation, kind, own_name or own_id)
            or agent_identity.stable(_text(a.get(K_INHERITED))) or agent_identity.stable(own_name)
            or agent_identity.stable(own_id))
    if final:
        return base, source, name, run_id
    if name:
        return base, "agent_span", name, run_id
    return base, "inherit", "", run_id  # a root resolves at once: no agent span above it


def resource_of(attributes: Mapping[str, Any]) -> str:
    """The resource a span's attributes name, as its record will (the guard's view at span start)."""
    return span_resource.resource_of(attributes)


def _fingerprint(a: dict[str, Any], tool_name: str, model: str, kind: str) -> str:
    """What makes two calls "the same call" for loop detection: tool + arguments, model + prompt, or the
    agent's own key."""
    explicit = a.get(K_FINGERPRINT)
    if explicit:
        return _text(explicit)[:64]
    if tool_name:
        arguments = a.get(K_ARGS) or (a.get(K_ENTITY_INPUT) if kind == span_kind.TOOL else None)
        if arguments:
            digest = hashlib.blake2b(_text(arguments).encode(), digest_size=8).hexdigest()
            return f"tool:{tool_name}:{digest}"
        return f"tool:{tool_name}"
    prompt = a.get(K_PROMPT)
    if model and prompt:  # the same prompt sent again and again is a loop; a model alone is just work
        return f"prompt:{model}:{hashlib.blake2b(_text(prompt).encode(), digest_size=8).hexdigest()}"
    return f"llm:{model}" if model else ""
