"""A guard process for the lease tests: `python -m tests.streaming.lease_spender URL AGENT CALLS` makes CALLS
concurrent LLM calls (real SDK spans through the guard's span processor and its spend lease), each using
all its max_tokens, and prints `{"spent": [usd, ...], "refused": n}` on its last line."""

from __future__ import annotations

import sys
import threading

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanwarden import AgentHalted
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard, GuardSpanProcessor
from spanwarden.collector.spend_lease import SpendLease

CALL = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.request.max_tokens": 10_000}


def spend(url: str, agent: str, calls: int) -> dict[str, object]:
    lease = SpendLease(url, agent, wait_s=60)
    watcher = DecisionWatcher(url, agent, wait_s=5)
    watcher.failing_since, watcher.ever_connected = None, True  # not started: the leases are what is tested
    provider = TracerProvider(resource=Resource.create({"service.name": agent}))
    provider.add_span_processor(GuardSpanProcessor(Guard(agent, watcher), lease))
    tracer = provider.get_tracer("lease-spender")
    cost = lease.prices.cost("gpt-4o", 1_000, 10_000, 0)[0]
    spent: list[float] = []
    refused: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            with tracer.start_as_current_span("chat gpt-4o", attributes=CALL) as span:
                span.set_attribute("gen_ai.usage.input_tokens", 1_000)
                span.set_attribute("gen_ai.usage.output_tokens", 10_000)
            with lock:
                spent.append(cost)
        except AgentHalted as halted:
            with lock:
                refused.append(str(halted))

    threads = [threading.Thread(target=call) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    provider.shutdown()
    return {"spent": spent, "refused": len(refused), "reasons": sorted(set(refused))[:3],
            "renewals": lease.renewals}


if __name__ == "__main__":
    print(orjson.dumps(spend(sys.argv[1], sys.argv[2], int(sys.argv[3]))).decode())
