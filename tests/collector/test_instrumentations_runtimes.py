"""Both runtimes run the trace stage right after normalisation: the embedded service (spans exported by the
real OTLP exporter from the real Anthropic SDK beside Traceloop's instrumentation: every call costed once;
LLM-looking spans without usage counted per agent in `status` and `/metrics/agents`) and the Kafka worker's span
splitter (the same, without a clock)."""

from __future__ import annotations

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from spanwarden.collector.normalize import Normalizer
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from spanwarden.streaming.span_splitter import SpansMessage, SpanSplitter
from tests.collector.fake_llm import fake_llm
from tests.collector.instrumented import PRICES, Capture

anthropic = pytest.importorskip("anthropic")
traceloop = pytest.importorskip("opentelemetry.instrumentation.anthropic")

ONE_CALL = (1000 * 3.0 + 400 * 0.30 + 100 * 3.75 + 250 * 15.0) / 1e6


def _three_calls_reported_twice(capture: Capture) -> None:
    instrumentor = traceloop.AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=capture.provider)
    try:
        with fake_llm() as url:
            client = anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0,
                                         open_telemetry={"tracer_provider": capture.provider})
            for _ in range(3):
                client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                       messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    tracer = capture.provider.get_tracer("some-framework")
    for _ in range(2):  # a convention spanwarden does not know: a model, but no usage it can read
        with tracer.start_as_current_span("acme.generate", attributes={"gen_ai.request.model": "claude-sonnet-4-5",
                                                                       "acme.tokens_used": 99}):
            pass


def test_the_service_costs_each_call_once_and_counts_spans_without_usage(tmp_path):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        capture = Capture({"service.name": "support-bot"})
        capture.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
        _three_calls_reported_twice(capture)
        capture.provider.force_flush()
        stage = service.call(lambda: service.trace_stage)
        assert stage.dedupe.duplicates == 3
        status = requests.get(f"{url}/v1/status", headers={"Authorization": "Bearer t"}, timeout=5).json()
        (agent,) = [a for a in status["agents"] if a["agent"] == "support-bot"]
        assert agent["llm_spans_without_usage"] == 2 and agent["agent_identity_from"] == "service"
        scraped = requests.get(f"{url}/metrics/agents", headers={"Authorization": "Bearer t"}, timeout=5).text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(scraped) for s in family.samples}
        assert samples[("spanwarden_llm_spans_without_usage_total", (("agent", "support-bot"),))] == 2
    finally:
        service.stop()


def test_the_kafka_span_splitter_costs_each_call_once():
    capture = Capture({"service.name": "support-bot"})
    _three_calls_reported_twice(capture)
    message = SpansMessage(0, 7, capture.request().SerializeToString())
    by_agent = SpanSplitter(Normalizer(PRICES)).split([message])
    records = [r for source in by_agent["support-bot"] for r in source.records]
    assert len(records) == 8
    assert sum(r.cost_usd for r in records) == pytest.approx(3 * ONE_CALL, abs=1e-12)
    assert sum(r.cost_source == "duplicate" for r in records) == 3
