"""The guard in front of the real `openai` client, instrumented by opentelemetry-instrumentation-openai-v2,
against an OpenAI-compatible server on loopback: a halted agent's call never reaches the server, a throttle
paces calls to the decided rate, and the usage it reports is priced by the service."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

openai = pytest.importorskip("openai")
openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

from spanwarden import AgentHalted  # noqa: E402
from spanwarden.collector.decision_watcher import DecisionWatcher  # noqa: E402
from spanwarden.collector.guard import Guard, GuardSpanProcessor  # noqa: E402
from spanwarden.embedded.service import EmbeddedService  # noqa: E402
from spanwarden.settings import Settings  # noqa: E402


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers chat completions as OpenAI does, with usage; counts what reached it."""

    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.received.append(body["model"])
        answer = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        return None


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def world(tmp_path):
    FakeOpenAI.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                       max_lateness_s=0))  # judged as received: the test reads spend at once
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    clock = FakeClock()
    watcher = DecisionWatcher(url, "openai-agent", wait_s=5).start()
    guard = Guard("openai-agent", watcher, clock=clock.now, sleep=clock.sleep)
    provider = TracerProvider(resource=Resource.create({"service.name": "openai-agent",
                                                        "deployment.environment.name": "prod"}))
    provider.add_span_processor(GuardSpanProcessor(guard))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="sk-test",
                           max_retries=0)
    yield client, url, service, watcher, clock
    instrumentor.uninstrument()
    watcher.stop()
    provider.shutdown()
    service.stop()
    server.shutdown()


def command(url, body):
    answer = requests.post(f"{url}/v1/commands", json=body, headers={"Authorization": "Bearer t"}, timeout=5)
    answer.raise_for_status()
    return answer.json()["version"]


def ask(client):
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_a_halted_agent_never_reaches_the_model(world):
    client, url, service, watcher, _ = world
    assert ask(client).choices[0].message.content == "ok"
    assert FakeOpenAI.received == ["gpt-4o-mini"]
    spent = service.call(lambda: service.pipeline.detectors["openai-agent"].cost.hour.sum)
    assert spent == pytest.approx((1200 * 0.15 + 300 * 0.6) / 1e6)  # the usage it reported, priced
    assert watcher.wait_for_version(command(url, {"command": "kill", "agent": "openai-agent", "reason": "test"}),
                                    5)
    with pytest.raises(AgentHalted):
        ask(client)
    assert FakeOpenAI.received == ["gpt-4o-mini"]  # the server received nothing more


def test_a_throttle_paces_calls_to_the_decided_rate(world):
    client, url, _, watcher, clock = world
    version = command(url, {"command": "throttle", "agent": "openai-agent", "rate_per_s": 2.0})
    assert watcher.wait_for_version(version, 5)
    start = clock.now()
    for _ in range(11):
        ask(client)
    assert len(FakeOpenAI.received) == 11
    assert (clock.now() - start) == pytest.approx(10 / 2.0)  # the guard made the agent wait 0.5 s a call


def test_fifty_concurrent_openai_calls_under_a_lease_overspend_by_at_most_one_estimate(tmp_path):
    import yaml

    from spanwarden.collector.spend_lease import SpendLease
    from spanwarden.enforcers.policy import Policy

    FakeOpenAI.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shipped = Policy.load().model_dump(mode="json")
    policy = tmp_path / "policy.yaml"
    budget = 0.005
    policy.write_text(yaml.safe_dump({**shipped, "budgets": {**shipped["budgets"], "agent_usd_per_hour": budget}}))
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", policy_file=policy,
                                       max_lateness_s=0))  # judged as received
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    watcher = DecisionWatcher(url, "leased", wait_s=5)
    watcher.failing_since = None
    lease = SpendLease(url, "leased")
    provider = TracerProvider(resource=Resource.create({"service.name": "leased"}))
    provider.add_span_processor(GuardSpanProcessor(Guard("leased", watcher), lease))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="sk-test",
                           max_retries=0)
    estimate = lease.estimate({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.max_tokens": 2000})
    refused = []

    def call():
        try:
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=2000,
                                           messages=[{"role": "user", "content": "hi"}])
        except AgentHalted:
            refused.append(1)

    try:
        threads = [threading.Thread(target=call) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        spent = service.call(lambda: service.pipeline.detectors["leased"].cost.hour.sum)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        service.stop()
        server.shutdown()
    assert refused and len(FakeOpenAI.received) + len(refused) == 50
    assert spent <= budget + estimate  # what the calls that went out really cost, as the service priced it
    assert len(FakeOpenAI.received) >= 3
