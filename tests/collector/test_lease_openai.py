"""Leases in front of the real `openai` client, instrumented by opentelemetry-instrumentation-openai-v2 (which
sets `gen_ai.request.max_tokens` only at span end), against an OpenAI-compatible server on loopback whose
replies are as long as each test says: 50 concurrent calls never spend more than the hourly budget plus one
call's actual cost — with replies far larger than any estimate too — and a burst gets the calls its budget
can afford. What was spent is what the server billed; the service judges spans 10 s late (its default
lateness bound), so within a test only the leases stand between the calls and the budget."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

openai = pytest.importorskip("openai")
openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

from spanwarden import AgentHalted  # noqa: E402
from spanwarden.collector.decision_watcher import DecisionWatcher  # noqa: E402
from spanwarden.collector.guard import Guard, GuardSpanProcessor  # noqa: E402
from spanwarden.collector.pricing import PriceTable  # noqa: E402
from spanwarden.collector.spend_lease import SpendLease  # noqa: E402
from spanwarden.embedded.service import EmbeddedService  # noqa: E402
from spanwarden.settings import Settings  # noqa: E402
from tests.collector.test_spend_lease import budget_policy  # noqa: E402

MODEL = "gpt-4o-mini"
PROMPT_TOKENS = 40  # what the server bills for the prompt below


class SizedReplies(BaseHTTPRequestHandler):
    """Chat completions billed at `reply_tokens` (at most the request's max_tokens, as a real server does,
    as a real server does); keeps what it billed."""

    reply_tokens = 300
    received = 0
    billed: list[int] = []  # reply tokens of each call answered
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = self.reply_tokens
        if body.get("max_tokens"):
            reply = min(reply, int(body["max_tokens"]))
        with SizedReplies.lock:
            SizedReplies.received += 1
            SizedReplies.billed.append(reply)
        answer = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": reply,
                      "total_tokens": PROMPT_TOKENS + reply},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        return None


def call_cost(reply_tokens: int) -> float:
    return PriceTable.load().cost(MODEL, PROMPT_TOKENS, reply_tokens, 0)[0]


@pytest.fixture
def world(tmp_path, request) -> Iterator[dict[str, Any]]:
    """An hourly budget of `request.param` USD, the service, the fake server, the guard."""
    budget = request.param
    SizedReplies.received, SizedReplies.reply_tokens, SizedReplies.billed = 0, 300, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SizedReplies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never",
                                       policy_file=budget_policy(tmp_path, budget)))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    watcher = DecisionWatcher(url, "leased", wait_s=5).start()
    lease = SpendLease(url, "leased")
    provider = TracerProvider(resource=Resource.create({"service.name": "leased"}))
    provider.add_span_processor(GuardSpanProcessor(Guard("leased", watcher, first_contact_s=10), lease))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="sk-test",
                           max_retries=0)
    try:
        yield {"client": client, "lease": lease, "budget": budget,
               "spent": lambda: sum(call_cost(reply) for reply in SizedReplies.billed)}
    finally:
        instrumentor.uninstrument()
        watcher.stop()
        provider.shutdown()
        service.stop()
        server.shutdown()


def concurrently(client, calls: int, **create: Any) -> int:
    """`calls` chat completions at once; the number refused by the guard."""
    refused = []

    def one() -> None:
        try:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], **create)
        except AgentHalted:
            refused.append(1)

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return len(refused)


TEN_CALLS = 10 * call_cost(300)


@pytest.mark.parametrize("world", [TEN_CALLS], indirect=True, ids=["10-calls"])
def test_a_burst_gets_the_calls_its_budget_affords(world):
    refused = concurrently(world["client"], 50, max_tokens=2000)  # estimated at 2,000, replies of 300
    assert SizedReplies.received >= 9 and refused == 50 - SizedReplies.received
    assert world["spent"]() <= world["budget"] + call_cost(300)


@pytest.mark.parametrize("world", [TEN_CALLS], indirect=True, ids=["10-calls"])
def test_max_tokens_is_read_from_the_client_call(world):
    world["client"].chat.completions.create(model=MODEL, max_tokens=1234, messages=[{"role": "user",
                                                                                    "content": "hi"}])
    last = world["lease"].last_reservation
    assert last is not None and last.bounded  # openai-v2 had not set gen_ai.request.max_tokens at span start
    assert last.usd == pytest.approx(PriceTable.load().cost(MODEL, last.prompt_tokens, 1234, 0)[0])


@pytest.mark.parametrize(("world", "reply_tokens"), [(10 * call_cost(4_000), 4_000), (TEN_CALLS, 3_000_000)],
                         indirect=["world"], ids=["4k-replies", "3M-replies"])
def test_fifty_concurrent_calls_with_replies_far_larger_than_the_estimate(world, reply_tokens):
    SizedReplies.reply_tokens = reply_tokens  # no max_tokens: the estimate knows nothing of these
    concurrently(world["client"], 50)
    assert SizedReplies.received >= 1
    assert world["spent"]() <= world["budget"] + call_cost(reply_tokens)  # over by one call at most


@pytest.mark.parametrize("world", [10 * call_cost(4_000)], indirect=True, ids=["10-calls"])
def test_max_tokens_holds_even_when_replies_would_run_longer(world):
    SizedReplies.reply_tokens = 4_000  # each reply is as long as its max_tokens allows
    concurrently(world["client"], 50, max_tokens=4_000)
    assert SizedReplies.received >= 1
    assert world["spent"]() <= world["budget"] + call_cost(4_000)
