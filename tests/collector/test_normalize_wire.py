"""The wire reader (collector/span_wire.py) reads what protobuf's objects say: its field numbers are the
generated descriptors', and for any span hypothesis makes both readers give the same fields and flags."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from spanwarden.collector import attributes as A
from spanwarden.collector import span_proto
from spanwarden.collector import span_wire as wire
from spanwarden.collector.normalize import _SPAN_WANTED, Normalizer
from spanwarden.collector.pricing import PriceTable


def test_the_field_numbers_are_the_descriptors():
    def numbers(message):
        return {f.name: (f.number, f.type) for f in message.DESCRIPTOR.fields}

    span = numbers(Span)
    assert {k: span[k][0] for k in ("trace_id", "span_id", "parent_span_id", "name", "start_time_unix_nano",
                                   "end_time_unix_nano", "attributes", "status")} == {
        "trace_id": 1, "span_id": 2, "parent_span_id": 4, "name": 5, "start_time_unix_nano": 7,
        "end_time_unix_nano": 8, "attributes": 9, "status": 15}
    assert span["start_time_unix_nano"][1] == span["end_time_unix_nano"][1] == 6  # TYPE_FIXED64
    assert numbers(Status)["code"][0] == 3
    assert (numbers(KeyValue)["key"][0], numbers(KeyValue)["value"][0]) == (1, 2)
    oneof = {f.name: f.number for f in AnyValue.DESCRIPTOR.oneofs_by_name["value"].fields}
    assert (oneof["string_value"], oneof["bool_value"], oneof["int_value"], oneof["double_value"]) == (1, 2, 3, 4)
    assert max(oneof.values()) == wire._ONEOF_LAST
    assert (numbers(ResourceSpans)["resource"][0], numbers(ResourceSpans)["scope_spans"][0],
            numbers(ScopeSpans)["spans"][0],
            numbers(ExportTraceServiceRequest)["resource_spans"][0]) == (1, 2, 2, 1)


KEYS = st.sampled_from([*A.SPAN_KEYS, "acme.tokens_used", "x.aggregated.tokens", "", "é"])
VALUES = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=300)),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), st.floats()),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=5)),
    st.builds(lambda v: AnyValue(array_value={"values": [AnyValue(int_value=v)]}), st.integers(0, 9)),
    st.just(AnyValue()),
)
SPANS = st.builds(
    lambda attrs, name, code, times, ids: Span(
        trace_id=ids, span_id=ids[:8], parent_span_id=ids[8:], name=name, start_time_unix_nano=times[0],
        end_time_unix_nano=times[1], status=Status(code=code),  # type: ignore[arg-type]
        attributes=[KeyValue(key=k, value=v) for k, v in attrs]),
    st.lists(st.tuples(KEYS, VALUES), max_size=12), st.text(max_size=300), st.sampled_from([0, 1, 2]),
    st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), st.binary(max_size=16))


@settings(max_examples=300, deadline=None)
@given(SPANS)
def test_both_readers_read_any_span_alike(span):
    data = span.SerializeToString()
    wire_flags: list[str] = []
    proto_flags: list[str] = []
    from_wire = wire.read_span(data, 0, len(data), _SPAN_WANTED, wire_flags)
    from_objects = span_proto.read_span(span, A.SPAN_KEYS, proto_flags)
    assert repr(from_wire[:8]) == repr(from_objects[:8])  # repr: nan equals nan, 1 is not True
    assert wire_flags == proto_flags
    assert wire.token_like(data, 0, len(data)) == span_proto.token_like(span.attributes)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(KEYS, VALUES), max_size=6), st.lists(SPANS, max_size=3)),
                max_size=3))
def test_both_readers_make_the_same_records(resources):
    request = ExportTraceServiceRequest()
    for attrs, spans in resources:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(KeyValue(key=k, value=v) for k, v in attrs)
        resource_spans.scope_spans.add().spans.extend(spans)
    prices = PriceTable.load()
    assert (repr(Normalizer(prices, wire_bytes=True).records(request))
            == repr(Normalizer(prices, wire_bytes=False).records(request)))
