"""The real `anthropic` client, whose own OTel spans are on whenever a tracer provider exists, alone and
under the Traceloop and OpenInference Anthropic instrumentations, against the loopback fake server: cache
reads and writes priced at their own rates, and each call costed once although two spans report it."""

from __future__ import annotations

import pytest

from tests.collector.fake_llm import ANTHROPIC_USAGE, fake_llm
from tests.collector.instrumented import Capture, llm_calls, total_cost

anthropic = pytest.importorskip("anthropic")

FRESH, OUT = ANTHROPIC_USAGE["input_tokens"], ANTHROPIC_USAGE["output_tokens"]
READ, WRITE = ANTHROPIC_USAGE["cache_read_input_tokens"], ANTHROPIC_USAGE["cache_creation_input_tokens"]
# claude-sonnet-4-5 list prices per million: $3 input, $15 output, $0.30 cache read, $3.75 cache write.
ONE_CALL = (FRESH * 3.0 + READ * 0.30 + WRITE * 3.75 + OUT * 15.0) / 1e6  # $0.007245, as Anthropic bills it


def _instrumentor(name: str):
    if name == "traceloop":
        return pytest.importorskip("opentelemetry.instrumentation.anthropic").AnthropicInstrumentor()
    if name == "openinference":
        return pytest.importorskip("openinference.instrumentation.anthropic").AnthropicInstrumentor()
    return None


def _calls(capture: Capture, name: str, n: int = 3) -> None:
    instrumentor = _instrumentor(name)
    if instrumentor is not None:
        instrumentor.instrument(tracer_provider=capture.provider)
    try:
        with fake_llm() as url:
            client = anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0,
                                         open_telemetry={"tracer_provider": capture.provider})
            for _ in range(n):
                client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                       messages=[{"role": "user", "content": "hi"}])
    finally:
        if instrumentor is not None:
            instrumentor.uninstrument()


def test_the_sdks_own_spans_are_read_with_cache_writes_at_their_rate():
    capture = Capture({"service.name": "support-bot"})
    _calls(capture, "sdk")
    records = capture.records()
    assert len(records) == 3
    for r in records:
        assert (r.model, r.provider, r.operation) == ("claude-sonnet-4-5", "anthropic", "chat")
        assert (r.input_tokens, r.output_tokens) == (FRESH + READ + WRITE, OUT)
        assert (r.cached_tokens, r.cache_write_tokens) == (READ, WRITE)
        assert r.cost_usd == pytest.approx(ONE_CALL, abs=1e-12) and r.cost_source == "price_table"
        assert r.resource == "" and r.response_id.startswith("msg_")  # url.full is the provider's
    assert round(total_cost(records), 4) == round(3 * ONE_CALL, 4) == 0.0217


@pytest.mark.parametrize("name", ["traceloop", "openinference"])
def test_an_instrumentation_beside_the_sdks_spans_costs_each_call_once(name):
    capture = Capture({"service.name": "support-bot"})
    _calls(capture, name)
    records = capture.records()
    assert len(records) == 6  # every call reported twice
    costed = llm_calls(records)
    assert len(costed) == 3
    assert total_cost(records) == pytest.approx(3 * ONE_CALL, abs=1e-12)  # not $0.0435
    dropped = [r for r in records if r.cost_source == "duplicate"]
    kept = {r.span_id for r in costed}
    assert len(dropped) == 3
    assert all(any(f"duplicate_of:{k}" in d.flags for k in kept) for d in dropped)
    assert all(r.cache_write_tokens == WRITE for r in costed)
