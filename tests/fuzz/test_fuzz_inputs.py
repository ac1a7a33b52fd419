"""Fuzzing the inputs that come from outside: OTLP bodies (protobuf and JSON), the policy file and the audit
log. Structured strategies (hypothesis) build near-valid inputs with hostile values as well as junk; each
run is bounded (examples and time). The only outcomes allowed are a result or the documented error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanwarden.collector import attributes as A
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import JSON, PROTOBUF, OtlpError, decode_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.enforcers.audit_log import AgentRef, AuditLog, read_entries, verify
from spanwarden.enforcers.policy import Policy, PolicyError

pytestmark = pytest.mark.slow
BOUNDED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NORMALIZER = Normalizer(PriceTable.load())
KNOWN_KEYS = sorted({*A.SPAN_KEYS, *A.RESOURCE_KEYS})

scalars = st.one_of(st.text(max_size=50), st.integers(5000, 20000).map(lambda n: "é" * n),
                    st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.binary(max_size=64))


def _any_value(value: Any, depth: int = 0) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(_any_value(v, depth + 1) for v in value)
    elif isinstance(value, dict):
        out.kvlist_value.values.extend(KeyValue(key=k, value=_any_value(v, depth + 1)) for k, v in value.items())
    else:
        out.string_value = value
    return out


values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=8)
attribute_sets = st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=30)), values, max_size=12)


@st.composite
def otlp_requests(draw: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(KeyValue(key=k, value=_any_value(v))
                                                  for k, v in draw(attribute_sets).items())
        for _ in range(draw(st.integers(0, 2))):
            scope = resource_spans.scope_spans.add()
            for _ in range(draw(st.integers(0, 4))):
                span = scope.spans.add()
                span.trace_id = draw(st.binary(max_size=20))
                span.span_id = draw(st.binary(max_size=10))
                span.name = draw(st.text(max_size=300))
                span.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.status.code = draw(st.integers(0, 2))
                span.attributes.extend(KeyValue(key=k, value=_any_value(v))
                                       for k, v in draw(attribute_sets).items())
    return request


def _records_are_sane(request: ExportTraceServiceRequest) -> None:
    for record in NORMALIZER.records(request):
        assert isinstance(record.agent_id, str) and record.agent_id
        assert math.isfinite(record.cost_usd) and record.cost_usd >= 0
        assert all(isinstance(getattr(record, f), int) and getattr(record, f) >= 0
                   for f in ("input_tokens", "output_tokens", "cached_tokens", "rows", "bytes"))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(otlp_requests())
def test_structured_protobuf_requests_decode_and_normalise_without_crashing(request: Any) -> None:
    _records_are_sane(decode_request(request.SerializeToString(), PROTOBUF))


@BOUNDED
@given(otlp_requests(), st.data())
def test_corrupted_protobuf_bodies_give_the_documented_error_or_a_request(request: Any, data: Any) -> None:
    body = bytearray(request.SerializeToString() or b"\x0a\x00")
    for _ in range(data.draw(st.integers(1, 8))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_request(bytes(body), PROTOBUF)
    except OtlpError:
        return
    _records_are_sane(decoded)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=20)


@st.composite
def otlp_json_bodies(draw: Any) -> bytes:
    span = {k: draw(st.one_of(json_values, st.text(alphabet="0123456789abcdef", max_size=40)))
            for k in draw(st.lists(st.sampled_from(["traceId", "spanId", "parentSpanId", "name",
                                                    "startTimeUnixNano", "endTimeUnixNano", "attributes",
                                                    "status", "links"]), unique=True))}
    scope_spans = [{"spans": [span, draw(json_values)]}]
    doc = {"resourceSpans": [{"resource": draw(json_values), "scopeSpans": scope_spans}]}
    return json.dumps(draw(st.sampled_from([doc, draw(json_values)]))).encode()


@BOUNDED
@given(otlp_json_bodies())
def test_json_bodies_give_the_documented_error_or_a_request(body: bytes) -> None:
    try:
        decoded = decode_request(body, JSON)
    except OtlpError:
        return
    _records_are_sane(decoded)


def test_deeply_nested_json_is_refused_not_a_crash() -> None:
    body = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(OtlpError):
        decode_request(body, JSON)


policy_docs = st.dictionaries(st.sampled_from(["version", "environments", "rules", "escalation", "budgets",
                                               "approvals", "sensitive_resources", "throttle_per_s", "cooldown_s",
                                               "human_override_s", "junk"]), json_values, max_size=8)


@BOUNDED
@given(st.one_of(policy_docs.map(lambda d: json.dumps(d)), st.text(max_size=400)))
def test_any_policy_file_loads_or_fails_with_a_policy_error(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(text)
    try:
        Policy.load(path)
    except PolicyError:
        pass


def _entries(body: bytes) -> list[bytes]:
    return [line for line in body.split(b"\n") if line.strip()]


def _audit_file(path: Path) -> bytes:
    log = AuditLog(path, b"k", fsync="never")
    for i in range(6):
        log.append("finding", AgentRef(f"a{i % 2}", "o@x", "t", "prod"), "detector:x", f"reason {i}", 100.0 + i,
                   (f"t/{i}",), "v1", {"score": i})
    log.close()
    return path.read_bytes()


@BOUNDED
@given(st.data())
def test_a_corrupted_audit_log_is_reported_never_a_crash(tmp_path_factory: Any, data: Any) -> None:
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    original = _audit_file(path)
    body = bytearray(original)
    action = data.draw(st.sampled_from(["flip", "cut", "insert", "drop_line"]))
    at = data.draw(st.integers(0, len(body) - 1))
    if action == "flip":
        body[at] = data.draw(st.integers(0, 255).filter(lambda b: b != body[at]))
    elif action == "cut":
        del body[at:]
    elif action == "insert":
        body[at:at] = data.draw(st.binary(min_size=1, max_size=50))
    else:
        lines = bytes(body).split(b"\n")
        del lines[data.draw(st.integers(0, len(lines) - 2))]
        body = bytearray(b"\n".join(lines))
    path.write_bytes(bytes(body))
    result = verify(path, b"k")
    assert result.message
    if _entries(bytes(body)) != _entries(original):
        assert not result.ok  # every change to an entry is caught (a blank line or the last newline is not one)
    for _, entry in read_entries(path):
        assert entry is not None
