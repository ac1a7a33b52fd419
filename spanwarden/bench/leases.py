"""Lease benchmarks, with the real service granting leases on loopback and the real guard on OTel SDK spans:
how many calls of a burst its budget lets through, how far 50 concurrent calls overspend when their replies
are far larger than the estimate, and what a lease adds to each LLM span."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import AgentHalted, Guard, GuardSpanProcessor
from spanwarden.collector.spend_lease import SpendLease

MODEL = "gpt-4o-mini"
PROMPT = 40  # tokens each call's prompt is billed


def _service(budget_usd: float | None) -> tuple[Any, str]:
    from spanwarden.embedded.service import EmbeddedService
    from spanwarden.enforcers.policy import Policy
    from spanwarden.settings import Settings

    state = Path(tempfile.mkdtemp(prefix="spanwarden-bench-"))
    shipped = Policy.load().model_dump(mode="json")
    policy = state / "policy.yaml"
    budgets = {**shipped["budgets"], "agent_usd_per_hour": budget_usd}
    policy.write_text(yaml.safe_dump({**shipped, "budgets": budgets}))
    service = EmbeddedService(Settings(port=0, state_dir=state, audit_fsync="never", policy_file=policy))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


def _guarded(url: str, agent: str) -> tuple[TracerProvider, SpendLease]:
    watcher = DecisionWatcher(url, agent)
    watcher.failing_since, watcher.ever_connected = None, True  # decisions are not what is measured
    lease = SpendLease(url, agent)
    provider = TracerProvider(resource=Resource.create({"service.name": agent}))
    provider.add_span_processor(GuardSpanProcessor(Guard(agent, watcher), lease))
    return provider, lease


def _cost(reply: int) -> float:
    return float(SpendLease("http://127.0.0.1:9", "-").prices.cost(MODEL, PROMPT, reply, 0)[0])


def _concurrent(budget: float, reply: int, max_tokens: int | None, calls: int) -> dict[str, float]:
    """`calls` concurrent LLM spans replying `reply` tokens under an hourly budget of `budget` USD: the calls
    let through, and the spend past the budget in calls of `reply` tokens."""
    cost = _cost(reply)
    service, url = _service(budget)
    provider, _ = _guarded(url, "bench-leased")
    tracer = provider.get_tracer("bench")
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL}
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    went, lock = [0], threading.Lock()

    def one() -> None:
        try:
            with tracer.start_as_current_span(f"chat {MODEL}", attributes=attributes) as span:
                time.sleep(0.005)  # the call takes a moment: the others start meanwhile
                span.set_attribute("gen_ai.usage.input_tokens", PROMPT)
                span.set_attribute("gen_ai.usage.output_tokens", reply)
            with lock:
                went[0] += 1
        except AgentHalted:
            pass

    threads = [threading.Thread(target=one) for _ in range(calls)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        provider.shutdown()
        service.stop()
    spent = went[0] * cost
    return {"calls_let_through": went[0], "affordable_calls": round(budget / cost, 2),
            "overspend_calls": round(max(0.0, spent - budget) / cost, 2)}


def leases(calls: int = 50) -> dict[str, Any]:
    """The burst (10 calls' budget, max_tokens 2,000, replies of 300) and replies far larger than any
    estimate (no max_tokens; 4,000 and 3,000,000 tokens), each `calls` at once."""
    burst = _concurrent(10 * _cost(300), 300, 2_000, calls)
    large = _concurrent(10 * _cost(4_000), 4_000, None, calls)
    huge = _concurrent(10 * _cost(300), 3_000_000, None, calls)
    return {"burst_calls_let_through": burst["calls_let_through"], "burst_affordable": burst["affordable_calls"],
            "overspend_calls_4k_replies": large["overspend_calls"],
            "calls_let_through_4k_replies": large["calls_let_through"],
            "overspend_calls_3m_replies": huge["overspend_calls"]}


def overhead(spans: int = 10_000, rounds: int = 7) -> dict[str, Any]:
    """What a lease adds per LLM span over the guard alone (same SDK pipeline, in-memory exporter), with the
    real service granting $5 leases on loopback (one renewal per ~1,000 spans here)."""
    service, url = _service(None)
    results: dict[bool, list[float]] = {False: [], True: []}
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL,
                                  "gen_ai.request.max_tokens": 300}
    try:
        for _ in range(rounds):
            for leased in (False, True):
                provider, _lease = _guarded(url, "bench-overhead")
                if not leased:
                    provider = TracerProvider()
                    watcher = DecisionWatcher(url, "bench-overhead")
                    watcher.failing_since, watcher.ever_connected = None, True
                    provider.add_span_processor(GuardSpanProcessor(Guard("bench-overhead", watcher)))
                provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
                tracer = provider.get_tracer("bench")
                started = time.perf_counter()
                for _ in range(spans):
                    with tracer.start_as_current_span(f"chat {MODEL}", attributes=attributes) as span:
                        span.set_attribute("gen_ai.usage.output_tokens", 100)
                results[leased].append((time.perf_counter() - started) / spans * 1e6)
                provider.shutdown()
    finally:
        service.stop()
    paired = [leased - alone for alone, leased in zip(results[False], results[True], strict=True)]
    return {"lease_overhead_us_per_span": round(statistics.median(paired), 2),
            "guard_us_per_span": round(statistics.median(results[False]), 2)}
