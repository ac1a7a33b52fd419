"""What a client call states about its own cost, read from an OpenAI-style request body."""

from __future__ import annotations

from spanwarden.collector.call_limits import BYTES_PER_TOKEN, limits_of


def test_the_reply_bound_is_the_calls_own_max_tokens_times_its_choices():
    assert limits_of({"max_tokens": 500}).max_output_tokens == 500
    assert limits_of({"max_completion_tokens": 800, "max_tokens": 500}).max_output_tokens == 800  # the newer
    assert limits_of({"max_tokens": 500, "n": 3}).max_output_tokens == 1500
    assert limits_of({"messages": []}).max_output_tokens is None  # no bound stated
    assert limits_of({"max_tokens": True}).max_output_tokens is None  # not a number


def test_the_prompt_is_sized_from_its_messages():
    short = limits_of({"messages": [{"role": "user", "content": "hi"}]}).prompt_tokens
    long = limits_of({"messages": [{"role": "user", "content": "word " * 3000}]}).prompt_tokens
    assert short is not None and long is not None and long >= 15_000 // BYTES_PER_TOKEN > short
    assert limits_of({"max_tokens": 5}).prompt_tokens is None  # nothing to size


def test_an_anthropic_calls_max_tokens_bounds_its_reservation(tmp_path):
    """The hook also sits on the Anthropic SDK (the same request building): its required max_tokens is read."""
    import threading
    from http.server import ThreadingHTTPServer

    import pytest

    anthropic = pytest.importorskip("anthropic")
    from opentelemetry.sdk.trace import TracerProvider

    from spanwarden.collector.decision_watcher import DecisionWatcher
    from spanwarden.collector.guard import Guard, GuardSpanProcessor
    from spanwarden.collector.spend_lease import SpendLease
    from spanwarden.embedded.service import EmbeddedService
    from spanwarden.settings import Settings
    from tests.collector.fake_llm import FakeLLM

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    watcher = DecisionWatcher(url, "a")
    watcher.failing_since, watcher.ever_connected = None, True
    lease = SpendLease(url, "a")
    provider = TracerProvider()
    provider.add_span_processor(GuardSpanProcessor(Guard("a", watcher), lease))
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{server.server_address[1]}", api_key="k",
                                 max_retries=0)
    try:
        with provider.get_tracer("t").start_as_current_span("chat", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4-5"}):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=777,
                                   messages=[{"role": "user", "content": "hi"}])
    finally:
        provider.shutdown()
        service.stop()
        server.shutdown()
    held = lease.last_reservation
    assert held is not None and held.bounded
    assert held.usd == lease.prices.cost("claude-sonnet-4-5", held.prompt_tokens, 777, 0)[0]


def test_a_shut_down_guard_no_longer_hears_client_calls() -> None:
    """A provider shut down takes its guard's processor off the client-call hook at once, not whenever the
    garbage collector gets to it: a halted agent's old guard must not refuse the calls of one set up after it
    (a flaky refusal in tests/collector/test_openai.py before this)."""
    from opentelemetry.sdk.trace import TracerProvider

    from spanwarden.collector import call_limits
    from spanwarden.collector.guard import Guard, GuardSpanProcessor

    provider = TracerProvider()
    processor = GuardSpanProcessor(Guard("old-agent"))
    provider.add_span_processor(processor)
    assert processor in call_limits._listeners
    provider.shutdown()
    assert processor not in call_limits._listeners
