"""The model gate on the Kafka runtime, on the real broker: the real `openai` client, instrumented by
opentelemetry-instrumentation-openai-v2, against an OpenAI-compatible server on loopback. The guard's
question before a first call to a far dearer model is answered by the agent's worker (which knows the agent's
price per token); denied by a human, the server never receives a call to that model."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
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
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess  # noqa: E402
from tests.collector.fake_llm import fake_llm  # noqa: E402
from tests.collector.instrumented import unwrap_left_over  # noqa: E402
from tests.collector.test_instrumentations_openai import _instrumentor  # noqa: E402
from tests.collector.test_model_gate import AGENT, CHEAP, DEAR, ask, received  # noqa: E402
from tests.streaming.conftest import PARTITIONS  # noqa: E402
from tests.streaming.test_gateway_end_to_end import TOKEN, running_gateway  # noqa: E402

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
WARM_UP = 60


def _pending(url: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=10).json()["pending"])


def _cheap_calls(url: str) -> int:
    answer = requests.get(f"{url}/v1/profile/{AGENT}", headers=ADMIN, timeout=30)
    return int(answer.json().get("models", {}).get(CHEAP, {}).get("calls", 0)) if answer.status_code == 200 else 0


def test_a_denied_model_switch_never_reaches_the_model_on_kafka(broker: LocalBroker, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANWARDEN_TRUST_SPAN_TIME", raising=False)  # real times: the calls happen now
    unwrap_left_over("")  # a clean client: wrappers another test left on would add spans of an old provider
    llm = fake_llm()
    llm_url = llm.__enter__()
    gateway = running_gateway(broker, tmp_path, max_lateness_s=0)
    url, _ = next(gateway)
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS,
                           extra_env={"SPANWARDEN_MAX_LATENESS_S": "0"}).start()
    watcher = DecisionWatcher(url, AGENT, wait_s=5, environment="prod").start()
    provider = TracerProvider(resource=Resource.create({"service.name": AGENT,
                                                        "deployment.environment.name": "prod"}))
    processor = GuardSpanProcessor(Guard(AGENT, watcher))
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    instrumentor = _instrumentor("openai_v2")
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=f"{llm_url}/v1", api_key="sk-test", max_retries=0)
    try:
        for _ in range(WARM_UP):
            ask(client, CHEAP)
        deadline = time.monotonic() + 60
        while _cheap_calls(url) < WARM_UP:  # the worker has learned them (its rollups reached the gateway)
            assert time.monotonic() < deadline, "the worker did not learn the warm-up calls"
            time.sleep(0.5)
        seen: list[dict[str, Any]] = []

        def deny() -> None:
            end = time.monotonic() + 60
            while time.monotonic() < end:
                found = _pending(url)
                if found:
                    seen.append({**found[0], "received_while_pending": received()})
                    requests.post(f"{url}/v1/access-requests/{found[0]['id']}/answer", headers=ADMIN, timeout=30,
                                  json={"approve": False, "always": True, "reason": "checked"}).raise_for_status()
                    return
                time.sleep(0.1)

        helper = threading.Thread(target=deny)
        helper.start()
        with pytest.raises(AgentHalted, match="denied"):
            ask(client, DEAR)
        helper.join()
        [request] = seen
        assert request["resource"] == f"model:{DEAR}" and DEAR not in request["received_while_pending"]
        multiple = re.search(r"(\d+)x its usual", request["reason"])
        assert multiple is not None and 50 <= int(multiple.group(1)) <= 100
        assert DEAR not in received()
        assert ask(client, CHEAP).choices[0].message.content == "ok"  # its usual calls go on
        assert _pending(url) == []
    finally:
        instrumentor.uninstrument()
        watcher.stop()
        provider.shutdown()
        call_limits._listeners.discard(processor)
        worker.stop()
        next(gateway, None)
        llm.__exit__(None, None, None)
