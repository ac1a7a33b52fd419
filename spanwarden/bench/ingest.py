"""Ingest benchmark: decode + normalise OTLP batches of GenAI spans produced by the real OTLP exporter's
encoder, on one core."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, decode_request
from spanwarden.collector.pricing import PriceTable


def make_batch(size: int = 512) -> bytes:
    """One OTLP/protobuf request body of `size` GenAI spans with about ten attributes each."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": "bench-agent", "deployment.environment.name": "prod", "spanwarden.owner": "bench@x",
        "spanwarden.team": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for i in range(size):
        if i % 2:
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 1200 + i, "gen_ai.usage.output_tokens": 300,
                "gen_ai.conversation.id": f"conv-{i % 7}", "gen_ai.response.id": f"resp-{i}",
                "server.address": "api.openai.com", "gen_ai.request.temperature": 0.2,
            }
        else:
            attrs = {
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "sql_query",
                "gen_ai.tool.call.id": f"call-{i}", "gen_ai.tool.call.arguments": '{"q": "select 1"}',
                "db.system.name": "postgresql", "db.namespace": "crm", "db.collection.name": "tickets",
                "db.response.returned_rows": i, "gen_ai.conversation.id": f"conv-{i % 7}",
                "code.function.name": "run_query",
            }
        with tracer.start_as_current_span(f"{attrs['gen_ai.operation.name']} x", attributes=attrs):
            pass
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    provider.shutdown()
    return encode_spans(spans).SerializeToString()


def run(batch: int = 512, seconds: float = 3.0, max_rounds: int = 10_000) -> dict[str, Any]:
    """Decode and normalise the same body repeatedly for about `seconds` (bounded by `max_rounds`)."""
    body = make_batch(batch)
    normalizer = Normalizer(PriceTable.load())
    rounds, spans = 0, 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline and rounds < max_rounds:
        spans += len(normalizer.records(decode_request(body, PROTOBUF)))
        rounds += 1
    elapsed = time.perf_counter() - started
    return {"spans_per_s": round(spans / elapsed, 1), "batch": batch}
