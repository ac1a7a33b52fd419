"""Harness for the compatibility tests: a real OTel SDK tracer provider that keeps finished spans in memory,
their OTLP encoding by the real exporter's encoder, and spanwarden's normaliser and trace stage over it."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanwarden.collector.agent_stamp import AgentStampProcessor
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord
from spanwarden.collector.trace_stage import TraceStage

PRICES = PriceTable.load()


class Capture:
    """A provider for an agent's process; `records()` is what the service would make of its spans."""

    def __init__(self, resource: dict[str, Any], stamp: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(resource))
        if stamp:
            self.provider.add_span_processor(AgentStampProcessor())
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def request(self) -> ExportTraceServiceRequest:
        return encode_spans(self.exporter.get_finished_spans())

    def normalized(self) -> list[SpanRecord]:
        wire = ExportTraceServiceRequest.FromString(self.request().SerializeToString())
        return Normalizer(PRICES).records(wire)

    def records(self, stage: TraceStage | None = None) -> list[SpanRecord]:
        """Normalised, then through the trace stage (a fresh one unless given), as one OTLP export."""
        return (stage or TraceStage()).process(self.normalized(), now=0.0)


def llm_calls(records: list[SpanRecord]) -> list[SpanRecord]:
    return [r for r in records if r.cost_usd > 0]


def total_cost(records: list[SpanRecord]) -> float:
    return sum(r.cost_usd for r in records)


def price(model: str, inp: int, out: int, cached: int = 0, written: int = 0) -> float:
    return PRICES.cost(model, inp, out, cached, written)[0]


def unwrap_left_over(package: str) -> None:
    """Take wrappers from `package` (every package: "") off the client's methods. Traceloop 0.62's
    uninstrument() passes module names where `unwrap` wants objects, so its wrappers stay on the client and
    would add spans of an old provider to the next test."""
    from openai.resources import completions, embeddings
    from openai.resources.chat import completions as chat
    from opentelemetry.instrumentation.utils import unwrap

    for cls in (chat.Completions, chat.AsyncCompletions, completions.Completions, completions.AsyncCompletions,
                embeddings.Embeddings, embeddings.AsyncEmbeddings):
        for name, value in list(vars(cls).items()):
            wrapper = getattr(value, "_self_wrapper", None)
            if wrapper is not None and getattr(wrapper, "__module__", "").startswith(package):
                unwrap(cls, name)
