"""The Kafka runtime's splitter makes an unknown LLM convention visible, as the embedded service does: LLM
spans without usage are counted per agent and named once in the worker's log."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanwarden.collector.normalize import NO_USAGE, Normalizer
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.streaming.span_splitter import SpansMessage, SpanSplitter


def _message(offset: int, agent: str, tokens: bool) -> SpansMessage:
    request = to_request([make_record(agent_id=agent, model="gpt-4o", input_tokens=10 if tokens else 0,
                                      output_tokens=5 if tokens else 0, cost_usd=0.0, span_id=f"{offset:016x}")])
    if not tokens:  # an instrumentation spanwarden cannot read: a model, an LLM kind, usage under other names
        span: Span = request.resource_spans[0].scope_spans[0].spans[0]
        keep = [kv for kv in span.attributes if "usage" not in kv.key and "token" not in kv.key]
        del span.attributes[:]
        span.attributes.extend(keep)
        span.attributes.append(KeyValue(key="vendor.llm.tokens_used", value=AnyValue(int_value=15)))
    return SpansMessage(0, offset, request.SerializeToString(), 0.0)


def test_llm_spans_without_usage_are_counted_and_named_once(caplog: pytest.LogCaptureFixture) -> None:
    splitter = SpanSplitter(Normalizer(PriceTable.load()))
    with caplog.at_level(logging.WARNING, logger="spanwarden.streaming.span_splitter"):
        out = splitter.split([_message(i, "mystery", tokens=False) for i in range(3)]
                             + [_message(9, "known", tokens=True)])
    records = [r for sources in out["mystery"] for r in sources.records]
    assert len(records) == 3 and all(NO_USAGE in r.flags for r in records)
    assert splitter.stage.without_usage.get("mystery") == 3
    assert splitter.stage.without_usage.get("known") is None
    told = [m for m in caplog.messages if "without token usage" in m]
    assert len(told) == 1 and "mystery" in told[0]
