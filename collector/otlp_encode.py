"""SpanRecords back to an OTLP `ExportTraceServiceRequest`: for replays, simulators and benchmarks that feed
recorded or synthetic traffic through a real OTLP path (HTTP or the spans topic).

Only what a record keeps is written, as the attributes `normalize` reads, so for such records
`Normalizer.records(to_request(records))` gives the records back (prompt and argument text is never kept,
so the fingerprint travels as `spanwarden.fingerprint`, and cost as a reported `spanwarden.cost_usd`)."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from spanwarden.collector import attributes as A
from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord


def to_request(records: Iterable[SpanRecord]) -> ExportTraceServiceRequest:
    """One request with a ResourceSpans per agent identity, spans in the given order."""
    request = ExportTraceServiceRequest()
    by_identity: dict[tuple[str, str, str, str, str], ResourceSpans] = {}
    for r in records:
        identity = (r.agent_id, r.owner, r.team, r.environment, r.agent_version)
        resource_spans = by_identity.get(identity)
        if resource_spans is None:
            resource_spans = by_identity[identity] = request.resource_spans.add()
            _put(resource_spans.resource.attributes, {
                A.SERVICE_NAME: r.agent_id if r.agent_id != UNKNOWN_AGENT else "", A.OWNER[0]: r.owner,
                A.TEAM: r.team, A.ENVIRONMENT[0]: r.environment, A.SERVICE_VERSION: r.agent_version})
            resource_spans.scope_spans.add()
        _span(resource_spans.scope_spans[0].spans.add(), r)
    return request


def _span(span: Span, r: SpanRecord) -> None:
    span.trace_id = bytes.fromhex(r.trace_id) if r.trace_id else b""
    span.span_id = bytes.fromhex(r.span_id) if r.span_id else b""
    span.parent_span_id = bytes.fromhex(r.parent_span_id) if r.parent_span_id else b""
    span.name = r.name
    span.start_time_unix_nano, span.end_time_unix_nano = r.start_ns, r.end_ns
    if r.is_error:
        span.status.code = Status.STATUS_CODE_ERROR
    _put(span.attributes, {
        A.OPERATION: r.operation, A.PROVIDER[0]: r.provider, A.RESPONSE_MODEL: r.model,
        A.TOOL_NAME: r.tool_name, A.RESOURCE: r.resource, A.FINGERPRINT: r.fingerprint,
        A.CONVERSATION_ID: r.conversation_id, A.ERROR_TYPE: r.error_type,
        A.INPUT_TOKENS[0]: r.input_tokens, A.OUTPUT_TOKENS[0]: r.output_tokens,
        A.CACHED_TOKENS[0]: r.cached_tokens, A.ROWS[0]: r.rows, A.BYTES[0]: r.bytes,
        A.REPORTED_COST[0]: r.cost_usd or None,
    })


def _put(target: object, values: dict[str | tuple[str, ...], str | int | float | None]) -> None:
    for key, value in values.items():
        if value in ("", None, 0):
            continue
        kv: KeyValue = target.add()  # type: ignore[attr-defined]
        kv.key = key if isinstance(key, str) else key[0]  # an attribute with aliases: its newest name
        if isinstance(value, str):
            kv.value.string_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.int_value = int(value)
