"""Guard benchmarks: what the guard adds to each LLM/tool span, and how fast a kill reaches an agent."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import AgentHalted, Guard, GuardSpanProcessor

ATTRIBUTES = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}


def _per_span_us(provider: TracerProvider, spans: int) -> float:
    tracer = provider.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(spans):
        with tracer.start_as_current_span("chat gpt-4o", attributes=ATTRIBUTES):
            pass
    return (time.perf_counter() - started) / spans * 1e6


def overhead(spans: int = 20_000, rounds: int = 5) -> dict[str, Any]:
    """Same SDK pipeline (in-memory exporter, cleared between rounds) with and without the guard, alternated;
    the guard holds an `allow` decision from a watcher that is not polling (no network in the measurement)."""
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for guarded in (False, True):
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            if guarded:
                watcher = DecisionWatcher("http://127.0.0.1:9", "bench")
                watcher.failing_since = None
                provider.add_span_processor(GuardSpanProcessor(Guard("bench", watcher)))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            results[guarded].append(_per_span_us(provider, spans))
            provider.shutdown()
    base, with_guard = statistics.median(results[False]), statistics.median(results[True])
    return {"overhead_us_per_span": round(with_guard - base, 2), "baseline_us_per_span": round(base, 2)}


def killswitch(trials: int = 50, timeout_s: float = 5.0) -> dict[str, Any]:
    """From the kill command (HTTP) to the agent's next call being refused, with the real service and guard
    on loopback; the agent calls every millisecond. Bounded: `trials` kills, each given `timeout_s`."""
    from spanwarden.embedded.service import EmbeddedService
    from spanwarden.settings import Settings

    state = Path(tempfile.mkdtemp(prefix="spanwarden-bench-"))
    service = EmbeddedService(Settings(port=0, state_dir=state, admin_token="bench", audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    watcher = DecisionWatcher(url, "bench-agent", wait_s=20).start()
    guard = Guard("bench-agent", watcher)
    session = requests.Session()
    headers = {"Authorization": "Bearer bench"}
    latencies, missed = [], 0
    try:
        for trial in range(trials):
            resumed = session.post(f"{url}/v1/commands", headers=headers, timeout=10,
                                   json={"command": "resume", "agent": "bench-agent"}).json()
            watcher.wait_for_version(resumed["version"], timeout_s)
            time.sleep(0.02 + (trial % 5) * 0.01)  # the poll is held, as it would be between events
            started = time.perf_counter()
            session.post(f"{url}/v1/commands", headers=headers, timeout=10,
                         json={"command": "kill", "agent": "bench-agent", "reason": "bench"}).raise_for_status()
            while True:
                try:
                    guard.admit()
                except AgentHalted:
                    latencies.append((time.perf_counter() - started) * 1000)
                    break
                if time.perf_counter() - started > timeout_s:
                    missed += 1
                    break
                time.sleep(0.001)
    finally:
        watcher.stop()
        service.stop()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("inf")
    return {"p50_ms": round(statistics.median(ordered), 2) if ordered else None, "p99_ms": round(p99, 2),
            "trials": trials, "missed": missed}
