"""A first call to a model far dearer than the agent's own is held before it is sent: the real `openai`
client, instrumented by opentelemetry-instrumentation-openai-v2 (and, for the denial, by OpenInference and
Traceloop, whose spans say the model only later), against an OpenAI-compatible server on loopback and the
real service. Denied, the server never receives a call to that model; approved, the model's
calls go and become the agent's normal price (no halt for them afterwards)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
import requests

openai = pytest.importorskip("openai")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

from spanwarden import AgentHalted  # noqa: E402
from spanwarden.collector import call_limits  # noqa: E402
from spanwarden.collector.decision_watcher import DecisionWatcher  # noqa: E402
from spanwarden.collector.guard import Guard, GuardSpanProcessor  # noqa: E402
from spanwarden.embedded.service import EmbeddedService  # noqa: E402
from spanwarden.enforcers.audit_log import read_entries  # noqa: E402
from spanwarden.enforcers.decision import Action  # noqa: E402
from spanwarden.settings import Settings  # noqa: E402

from .fake_llm import FakeLLM, fake_llm  # noqa: E402
from .instrumented import unwrap_left_over  # noqa: E402
from .test_instrumentations_openai import _instrumentor  # noqa: E402

ADMIN = {"Authorization": "Bearer t"}
AGENT = "switcher"
CHEAP, DEAR = "gpt-4o-mini", "claude-opus-4-1"  # $0.15 and $15 per million input tokens: 100x


def received() -> list[str]:
    """The models of the calls that reached the server."""
    return [str(r["model"]) for r in FakeLLM.received]


def world_for(tmp_path, environment: str, instrumentation: str = "openai_v2") -> Any:
    unwrap_left_over("")  # a clean client: wrappers another test left on would add spans of an old provider
    llm = fake_llm()
    llm_url = llm.__enter__()
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                       max_lateness_s=0))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    watcher = DecisionWatcher(url, AGENT, wait_s=5, environment=environment).start()
    guard = Guard(AGENT, watcher)
    provider = TracerProvider(resource=Resource.create({"service.name": AGENT,
                                                        "deployment.environment.name": environment}))
    processor = GuardSpanProcessor(guard)
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    instrumentor = _instrumentor(instrumentation)
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=f"{llm_url}/v1", api_key="sk-test", max_retries=0)

    def close() -> None:
        instrumentor.uninstrument()
        if instrumentation == "traceloop":
            unwrap_left_over("opentelemetry.instrumentation.openai")
        watcher.stop()
        provider.shutdown()
        service.stop()
        llm.__exit__(None, None, None)
        call_limits._listeners.discard(processor)

    return client, url, service, close


@pytest.fixture
def prod(tmp_path):
    client, url, service, close = world_for(tmp_path, "prod")
    yield client, url, service
    close()


@pytest.fixture(params=["openai_v2", "openinference", "traceloop"])
def prod_any(tmp_path, request):
    client, url, service, close = world_for(tmp_path, "prod", request.param)
    yield client, url, service
    close()


def ask(client: Any, model: str) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def warm_up(client: Any, service: EmbeddedService, calls: int = 60) -> None:
    """Enough calls of the cheap model for the service to know the agent's price per token."""
    for _ in range(calls):
        ask(client, CHEAP)
    deadline = time.monotonic() + 15
    while service.call(lambda: getattr(service.pipeline.bank(AGENT), "cost", None) is None
                       or service.pipeline.bank(AGENT).cost.price.calls < calls):
        assert time.monotonic() < deadline, "the service did not judge the warm-up calls"
        time.sleep(0.02)


def answer_when_pending(url: str, approve: bool, seen: list[dict[str, Any]]) -> threading.Thread:
    def run() -> None:
        for _ in range(1500):
            found = requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=5).json()["pending"]
            if found:
                seen.append({**found[0], "received_while_pending": received()})
                requests.post(f"{url}/v1/access-requests/{found[0]['id']}/answer", headers=ADMIN, timeout=5,
                              json={"approve": approve, "always": True, "reason": "checked"}).raise_for_status()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def findings(service: EmbeddedService) -> list[Any]:
    """The findings the audit log holds for the agent (once written)."""
    return [e for _, e in read_entries(service.settings.state_dir / "audit.jsonl")
            if e.kind == "finding" and e.agent.id == AGENT]


def test_a_denied_model_switch_never_reaches_the_model(prod_any):
    client, url, service = prod_any
    warm_up(client, service)
    seen: list[dict[str, Any]] = []
    helper = answer_when_pending(url, False, seen)
    with pytest.raises(AgentHalted, match="denied") as refused:
        ask(client, DEAR)
    helper.join()
    # Not "halted": its other calls go on; and the human who denied it is named, not the policy that asked.
    assert f"calls to model:{DEAR} are refused by human:admin" in str(refused.value), str(refused.value)
    [request] = seen
    assert request["resource"] == f"model:{DEAR}" and DEAR not in request["received_while_pending"]
    multiple = re.search(r"(\d+)x its usual", request["reason"])  # what it would cost against the agent's own
    assert multiple is not None and 50 <= int(multiple.group(1)) <= 100
    with pytest.raises(AgentHalted):
        ask(client, DEAR)  # the next one is refused at once: the model stays denied for the agent
    assert DEAR not in received()
    assert ask(client, CHEAP).choices[0].message.content == "ok"  # its usual calls go on
    gate = [f for f in findings(service) if f.data["kind"] == "new_model_price"]
    assert len(gate) == 1 and gate[0].actor == "detector:cost_velocity"
    assert requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=5).json()["pending"] == []


def test_an_approved_model_goes_and_becomes_the_agents_normal_price(prod):
    client, url, service = prod
    warm_up(client, service)
    helper = answer_when_pending(url, True, [])
    assert ask(client, DEAR).choices[0].message.content == "ok"
    helper.join()
    for _ in range(5):
        ask(client, DEAR)
    assert received().count(DEAR) == 6
    deadline = time.monotonic() + 15
    while service.call(lambda: service.pipeline.bank(AGENT).cost.price.models.get(DEAR.lower(), 0) < 6):
        assert time.monotonic() < deadline, "the service did not judge the approved model's calls"
        time.sleep(0.02)
    assert service.call(lambda: service.pipeline.decision(AGENT).action) is Action.ALLOW
    assert not [f for f in findings(service) if f.data["kind"] == "price_jump"]  # not judged a jump once let


def test_a_model_the_agent_already_calls_and_a_modest_step_up_are_not_asked_about(prod):
    client, url, service = prod
    warm_up(client, service)
    ask(client, "gpt-4.1-mini")  # $0.40 per million input tokens: under 10x the agent's own
    ask(client, CHEAP)
    assert received()[-2:] == ["gpt-4.1-mini", CHEAP]
    assert requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=5).json()["pending"] == []


def test_in_dev_a_first_call_to_a_dear_model_is_not_held(tmp_path):
    client, url, service, close = world_for(tmp_path, "dev")
    try:
        warm_up(client, service)
        assert ask(client, DEAR).choices[0].message.content == "ok"
        assert requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=5).json()["pending"] == []
    finally:
        close()
