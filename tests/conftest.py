"""Shared fixtures: real OTel SDK spans encoded by the real OTLP exporter's encoder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

# `serve` decodes OTLP bodies in processes of its own by default (one per core but the loop's); tests decode on
# the loop unless they ask for processes (tests/embedded/test_decode_pool.py), so no test leaves one behind.
os.environ.setdefault("SPANWARDEN_DECODE_PROCESSES", "0")


class SpanFactory:
    """Makes finished SDK spans for one resource and encodes them as the OTLP exporter does."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(resource))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def span(self, name: str, attributes: dict[str, Any] | None = None, error: bool = False,
             start_ns: int = 1_800_000_000_000_000_000, duration_ns: int = 1_000_000) -> None:
        span = self.tracer.start_span(name, attributes=attributes or {}, start_time=start_ns)
        if error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start_ns + duration_ns)

    def body(self) -> bytes:
        spans = self.exporter.get_finished_spans()
        self.exporter.clear()
        return encode_spans(spans).SerializeToString()


@pytest.fixture
def span_factory() -> Iterator[Callable[..., SpanFactory]]:
    made: list[SpanFactory] = []

    def make(**resource: Any) -> SpanFactory:
        factory = SpanFactory({k.replace("__", "."): v for k, v in resource.items()})
        made.append(factory)
        return factory

    yield make
    for factory in made:
        factory.provider.shutdown()
