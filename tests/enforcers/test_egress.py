"""Data egress, with the real httpx instrumentation against a loopback server and the real service: in prod a
first POST to an external host outside the agent's profile is held as an access request for that host until
a human answers; once approved (the host joins the profile) the next POST goes without asking. Reads of new
hosts, writes in dev and writes to the agents' own domains are not held."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.access_requests import egress_view
from spanwarden.enforcers.approvals import is_external
from spanwarden.enforcers.policy import Policy
from spanwarden.settings import INTERNAL_DOMAINS, Settings

ADMIN = {"Authorization": "Bearer t"}


class Receiver(BaseHTTPRequestHandler):
    """The "external host": counts what reaches it."""

    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append(f"POST {self.path}")
        self._ok()

    def do_GET(self) -> None:  # noqa: N802
        self.received.append(f"GET {self.path}")
        self._ok()

    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def external() -> Iterator[tuple[str, list[str]]]:
    """A loopback server reached by the name `localhost` (the control channel is 127.0.0.1)."""
    received: list[str] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_port}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    # Only *.corp.example is the agents' own: the loopback test server counts as an external host.
    running = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", admin_token="t",
                                       internal_domains=["*.corp.example"]))
    yield f"http://127.0.0.1:{running.start_in_thread()}"
    running.stop()


def agent(url: str, environment: str, name: str = "uploader") -> tuple[httpx.Client, Any]:
    """One process of the agent: the guard, its spans exported to the service, an instrumented httpx client."""
    provider = TracerProvider(resource=Resource.create({"service.name": name,
                                                        "deployment.environment.name": environment}))
    guard = guard_processor(name, url=url, environment=environment)
    provider.add_span_processor(guard)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    client = httpx.Client(timeout=10)
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    with provider.get_tracer("agent").start_as_current_span("invoke_agent work"):
        pass  # the service knows the agent (and keeps its profile) from its first span
    deadline = time.monotonic() + 10
    while requests.get(f"{url}/v1/profile/{name}", headers=ADMIN, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the service did not take the agent's first span"
        time.sleep(0.02)
    return client, guard


def profile(url: str, name: str) -> dict[str, Any]:
    return dict(requests.get(f"{url}/v1/profile/{name}", headers=ADMIN, timeout=5).json())


def pending(url: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{url}/v1/access-requests", headers=ADMIN, timeout=5).json()["pending"])


def answer_when_pending(url: str, approve: bool, seen: list[dict[str, Any]],
                        received: list[str]) -> threading.Thread:
    def run() -> None:
        for _ in range(1000):
            found = pending(url)
            if found:
                seen.append({**found[0], "received_while_pending": list(received)})
                requests.post(f"{url}/v1/access-requests/{found[0]['id']}/answer", headers=ADMIN, timeout=5,
                              json={"approve": approve, "always": True, "reason": "known vendor"}
                              ).raise_for_status()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_first_post_to_a_new_external_host_is_held_and_the_second_after_approval_goes(service, external):
    base, received = external
    client, guard = agent(service, "prod")
    seen: list[dict[str, Any]] = []
    helper = answer_when_pending(service, True, seen, received)
    assert client.post(f"{base}/upload?token=s3cret", content=b"rows").status_code == 200
    helper.join()
    [request] = seen
    assert request["resource"] == "http:localhost" and request["agent_id"] == "uploader"
    assert request["received_while_pending"] == []  # held: nothing reached the host before the answer
    assert "s3cret" not in str(request)  # the query string is never in the request
    assert "http:localhost" in profile(service, "uploader")["resources"]  # approval added the host
    assert client.post(f"{base}/upload", content=b"more").status_code == 200
    # A new process of the agent (a guard that has asked nothing yet) is let through by the profile too.
    again, second = agent(service, "prod")
    assert again.post(f"{base}/upload", content=b"again").status_code == 200
    assert received == ["POST /upload?token=s3cret", "POST /upload", "POST /upload"]
    assert pending(service) == []
    guard.shutdown()
    second.shutdown()


def test_a_denied_host_receives_nothing(service, external):
    base, received = external
    client, guard = agent(service, "prod")
    helper = answer_when_pending(service, False, [], received)
    with pytest.raises(AgentHalted, match="denied"):
        client.post(f"{base}/upload", content=b"rows")
    helper.join()
    assert received == []
    guard.shutdown()


def test_reads_of_new_hosts_and_writes_in_dev_are_not_held(service, external):
    base, received = external
    reader, guard = agent(service, "prod", "reader")
    assert reader.get(f"{base}/feed").status_code == 200
    writer, dev_guard = agent(service, "dev", "dev-uploader")
    assert writer.post(f"{base}/upload", content=b"x").status_code == 200
    assert received == ["GET /feed", "POST /upload"] and pending(service) == []
    guard.shutdown()
    dev_guard.shutdown()


def test_what_counts_as_external():
    assert not is_external("billing.svc.cluster.local", INTERNAL_DOMAINS)
    assert not is_external("LOCALHOST", INTERNAL_DOMAINS) and not is_external("", INTERNAL_DOMAINS)
    assert is_external("files.example.org", INTERNAL_DOMAINS)
    assert not is_external("api.corp.example", ["*.corp.example"])
    policy = Policy.load()
    assert egress_view(policy.access_requests, "prod", ["x"]) == {"applies": True, "internal": ["x"]}
    assert not egress_view(policy.access_requests, "dev", [])["applies"]
    assert not egress_view(policy.access_requests, None, [])["applies"]  # only where the environment is known
    assert not egress_view(policy.access_requests, "prod", [], supported=False)["applies"]
