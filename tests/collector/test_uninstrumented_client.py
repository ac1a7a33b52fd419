"""The guard's backstop at the client: an openai call that no LLM span wraps (the instrumentation failed to
load, was disabled, or is missing) is still refused for a halted agent before any byte is sent, and a call
the guard checked at its span's start is not checked again (a throttle takes one token a call)."""

from __future__ import annotations

import logging
import threading
from http.server import ThreadingHTTPServer

import pytest

openai = pytest.importorskip("openai")

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from spanwarden import AgentHalted  # noqa: E402
from spanwarden.collector.decision_watcher import DecisionWatcher  # noqa: E402
from spanwarden.collector.guard import Guard, GuardSpanProcessor  # noqa: E402
from spanwarden.embedded.service import EmbeddedService  # noqa: E402
from spanwarden.settings import Settings  # noqa: E402

from .test_openai import FakeClock, FakeOpenAI, ask, command  # noqa: E402


@pytest.fixture
def bare(tmp_path):
    """The guard installed as instrument() installs it, and no LLM instrumentation at all."""
    FakeOpenAI.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    clock = FakeClock()
    watcher = DecisionWatcher(url, "bare-agent", wait_s=5).start()
    guard = Guard("bare-agent", watcher, clock=clock.now, sleep=clock.sleep)
    provider = TracerProvider(resource=Resource.create({"service.name": "bare-agent"}))
    processor = GuardSpanProcessor(guard)
    provider.add_span_processor(processor)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="sk-test",
                           max_retries=0)
    yield client, url, watcher, clock
    watcher.stop()
    provider.shutdown()
    service.stop()
    server.shutdown()
    import spanwarden.collector.call_limits as limits
    limits._listeners.discard(processor)


def test_a_halted_agent_without_instrumentation_is_refused_at_the_client(bare, caplog):
    client, url, watcher, _ = bare
    with caplog.at_level(logging.WARNING, logger="spanwarden.collector.guard"):
        assert ask(client).choices[0].message.content == "ok"
    assert any("outside any LLM span" in m for m in caplog.messages)
    assert watcher.wait_for_version(command(url, {"command": "kill", "agent": "bare-agent", "reason": "t"}), 5)
    with pytest.raises(AgentHalted):
        ask(client)
    assert FakeOpenAI.received == ["gpt-4o-mini"]  # nothing more reached the model


def test_a_throttle_paces_uninstrumented_calls_too(bare):
    client, url, watcher, clock = bare
    assert watcher.wait_for_version(command(url, {"command": "throttle", "agent": "bare-agent",
                                                  "rate_per_s": 2.0}), 5)
    start = clock.now()
    for _ in range(5):
        ask(client)
    assert clock.now() - start == pytest.approx(4 / 2.0)
