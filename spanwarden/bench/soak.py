"""Soak benchmark: a real `spanwarden serve` process on loopback, fed OTLP/HTTP by many agents for a
bounded time, while its memory is watched.

Each agent sends batches of its own spans with advancing times (LLM calls with cost, tool calls touching
tables, rare errors), so every detector keeps learning and the ladder keeps judging; agents are cycled
so per-agent state grows to its bound early. `rss_mb_start` is read once every agent has been seen,
`rss_mb_end` at the end: with state bounded per agent, the two should be close. `dropped` counts requests
the service did not acknowledge (anything but 200)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.streaming.local_stack import _wait_for_port, free_port

START_S = 1_800_000_000.0


class AgentTraffic:
    """One agent's spans, a batch at a time, with time moving on."""

    def __init__(self, index: int, seed: int) -> None:
        self.agent = f"soak-{index:04d}"
        self.rng = random.Random(seed * 100_003 + index)
        self.t = START_S + self.rng.uniform(0, 60)
        self.tables = [f"db:pg:app.t{k}" for k in range(self.rng.randint(2, 8))]
        self.n = 0

    def batch(self, size: int) -> list[SpanRecord]:
        out = []
        for _ in range(size):
            self.t += self.rng.expovariate(1 / 5.0)
            self.n += 1
            tool = self.rng.random() < 0.5
            out.append(make_record(
                agent_id=self.agent, team=f"team-{hash(self.agent) % 7}", environment="prod",
                span_id=f"{self.n:016x}", trace_id=f"{self.n:032x}", start_ns=int((self.t - 1) * 1e9),
                end_ns=int(self.t * 1e9), model="gpt-4o-mini", cost_usd=0.0 if tool else
                self.rng.lognormvariate(-6, 0.7), tool_name="sql_query" if tool else "",
                resource=self.rng.choice(self.tables) if tool else "", rows=self.rng.randrange(200) if tool else 0,
                fingerprint=f"tool:sql_query:{self.rng.randrange(10**6)}" if tool else "",
                is_error=self.rng.random() < 0.01))
        return out


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1 << 20)


def run(agents: int = 500, seconds: float = 30.0, batch: int = 100, clients: int = 4, seed: int = 0,
        max_requests: int = 1_000_000) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="spanwarden-soak-"))
    port = free_port()
    env = {**os.environ, "SPANWARDEN_PORT": str(port), "SPANWARDEN_STATE_DIR": str(state),
           "SPANWARDEN_AUDIT_FSYNC": "never", "SPANWARDEN_DATADOG_EXPORT": "off"}
    with open(state / "serve.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "spanwarden.cli", "serve"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, server, "spanwarden serve", 30.0)
        return _drive(f"http://127.0.0.1:{port}", server.pid, agents, seconds, batch, clients, seed, max_requests)
    finally:
        server.terminate()
        server.wait(30)


def _drive(url: str, pid: int, agents: int, seconds: float, batch: int, clients: int, seed: int,
           max_requests: int) -> dict[str, Any]:
    traffic = [AgentTraffic(i, seed) for i in range(agents)]
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"spans": 0, "dropped": 0, "requests": 0, "next": 0}
    seen_all = threading.Event()
    rss: dict[str, float] = {}
    deadline = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if counts["requests"] >= max_requests:
                    return
                counts["requests"] += 1
                agent = traffic[counts["next"] % agents]
                counts["next"] += 1
                records = agent.batch(batch)  # under the lock: one agent's batches stay in order
            body = to_request(records).SerializeToString()
            started = time.perf_counter()
            try:
                ok = session.post(f"{url}/v1/traces", data=body, timeout=30,
                                  headers={"Content-Type": "application/x-protobuf"}).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                counts["spans" if ok else "dropped"] += len(records) if ok else 1
                if counts["next"] >= agents and not seen_all.is_set():
                    rss["start"] = _rss_mb(pid)
                    seen_all.set()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"spans_per_s": round(counts["spans"] / wall, 1),
            "p99_ingest_ms": round(float(np.percentile(latencies, 99)) * 1000, 2) if latencies else None,
            "rss_mb_start": round(rss.get("start", float("nan")), 1), "rss_mb_end": round(_rss_mb(pid), 1),
            "dropped": counts["dropped"], "agents": agents, "seconds": round(wall, 1), "spans_per_request": batch,
            "requests": counts["requests"]}
