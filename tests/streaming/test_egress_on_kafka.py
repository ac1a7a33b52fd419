"""Data egress on the Kafka runtime, on the real broker with the real httpx instrumentation against a loopback
"external host": a first POST to a host outside the agent's profile is held by its guard until a human answers
the host's access request (opened by the agent's worker, listed by the gateway); once approved, the host is in
the profile the worker keeps, and the next POST goes without asking. A denied host receives nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanwarden import AgentHalted
from spanwarden.collector.instrument import guard_processor
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.enforcers.test_egress import Receiver
from tests.streaming.conftest import PARTITIONS
from tests.streaming.test_gateway_end_to_end import TOKEN, running_gateway

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def external() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Receiver,), {"received": received}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_port}", received
    server.shutdown()
    server.server_close()


def _agent(url: str, name: str) -> tuple[httpx.Client, Any]:
    provider = TracerProvider(resource=Resource.create({"service.name": name,
                                                        "deployment.environment.name": "prod"}))
    guard = guard_processor(name, url=url, environment="prod")
    provider.add_span_processor(guard)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    client = httpx.Client(timeout=30)
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    with provider.get_tracer("agent").start_as_current_span("invoke_agent work"):
        pass  # the agent's worker knows it (and keeps its profile) from its first span
    deadline = time.monotonic() + 60
    while requests.get(f"{url}/v1/profile/{name}", headers=ADMIN, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the worker did not take the agent's first span"
        time.sleep(0.2)
    return client, guard


def _pending(url: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=10).json()["pending"])


def _answer_when_pending(url: str, approve: bool, seen: list[dict[str, Any]],
                         received: list[str]) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = _pending(url)
            if found:
                seen.append({**found[0], "received_while_pending": list(received)})
                requests.post(f"{url}/v1/access-requests/{found[0]['id']}/answer", headers=ADMIN, timeout=30,
                              json={"approve": approve, "always": True, "reason": "known vendor"}
                              ).raise_for_status()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_egress_is_held_by_the_agents_worker_until_a_human_answers(broker: LocalBroker, tmp_path: Path,
                                                                   external: tuple[str, list[str]]) -> None:
    base, received = external
    gateway = running_gateway(broker, tmp_path, internal_domains=["*.corp.example"])  # localhost is external
    url, _ = next(gateway)
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
    guards = []
    try:
        client, guard = _agent(url, "uploader")
        guards.append(guard)
        seen: list[dict[str, Any]] = []
        helper = _answer_when_pending(url, True, seen, received)
        assert client.post(f"{base}/upload?token=s3cret", content=b"rows").status_code == 200
        helper.join()
        [request] = seen
        assert request["resource"] == "http:localhost" and request["agent_id"] == "uploader"
        assert request["received_while_pending"] == []  # held: nothing reached the host before the answer
        assert "s3cret" not in str(request)
        assert client.post(f"{base}/upload", content=b"more").status_code == 200  # in the profile now
        assert received == ["POST /upload?token=s3cret", "POST /upload"] and _pending(url) == []

        denied_client, denied_guard = _agent(url, "leaker")
        guards.append(denied_guard)
        helper = _answer_when_pending(url, False, [], received)
        with pytest.raises(AgentHalted, match="denied"):
            denied_client.post(f"{base}/exfil", content=b"rows")
        helper.join()
        assert received == ["POST /upload?token=s3cret", "POST /upload"]  # the denied host got nothing
    finally:
        for running in guards:
            running.shutdown()
        worker.stop()
        next(gateway, None)
