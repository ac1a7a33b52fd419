"""Soak benchmark: a real `spanwarden serve` process on loopback with its shipped defaults (audit fsync
`always`), fed OTLP/HTTP by many agents for a bounded time, while its memory, its event loop and its kill
switch are watched.

Each agent sends batches of its own spans with advancing times (LLM calls with cost, tool calls touching
tables, rare errors), so every detector keeps learning and the ladder keeps judging. `--churn K` adds K
brand-new agent names per second on top (a fleet that keeps renaming, or someone inventing names).
During the load a guarded agent (in a process of its own, as a real one is) is killed and resumed over and
over (`spanwarden.bench.kills`), each kill timed from the command to its guard refusing a call. Figures:
- `spans_per_s`, `p99_ingest_ms`: acknowledged spans per second; the 99th percentile of request latency;
- `dropped`: requests not acknowledged with a 200 (a 429/503 asking to retry counts here too);
- `kill_p99_ms_under_load`, `missed` (not refused within 5 s), `kills`;
- `max_loop_stall_ms`: the service's loop-lag probe, worst lateness over the whole run (`/metrics`), which
  on a busy machine includes the time the OS kept the process off its cores; `max_loop_held_ms`: the most
  CPU the loop's thread spent between two of the probe's 10 ms wakes (what the service itself held it for);
- `new_agents_refused`, `agents_known`: names past the new-agent caps, and agents in the service at the end;
- `rss_warm_mb` at the end of warm-up (every agent seen and half the time gone: records wait out the
  lateness bound before they are judged, so memory fills for a while), `rss_end_mb`
  at the end; `rss_mb_start`/`rss_mb_end` are the same two figures under their old names; `warm_at_s`, when
  the warm-up figure was taken. The agents' state fills for the longest detector window (the runaway loop's
  120 s of calls) before it is steady, so a run for flat memory lasts well past that: `--seconds 300`;
- `records_clamped`: spans whose time the service held to its bounds (each batch is an agent's last half
  second, so none should be);
- `service_cpu_per_s`, `service_cpu_us_per_span`: the service's CPU, its decode processes' included
  (`SPANWARDEN_DECODE_PROCESSES`); `loop_process_cpu_us_per_span` the serve process alone (the event loop's, the
  one that bounds the throughput), `decode_cpu_per_s` and `decode_rss_mb` the decode processes'."""

from __future__ import annotations

import http.client
import os
import re
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

from spanwarden.bench.kills import KillsInOwnProcess
from spanwarden.bench.soak_traffic import BURST_S, START_S, AgentTraffic
from spanwarden.streaming.local_stack import _wait_for_port, free_port

__all__ = ["ADMIN", "BURST_S", "START_S", "AgentTraffic", "run"]
ADMIN = "soak-admin"
HEADERS = {"Content-Type": "application/x-protobuf"}


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1 << 20)


def _children_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each of the service's child processes (its decode processes, decode_pool.py)."""
    out = {}
    for child in psutil.Process(pid).children():
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[child.pid] = times.user + times.system
    return out


def _children_rss_mb(pid: int) -> float:
    total = 0.0
    for child in psutil.Process(pid).children():
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / (1 << 20)


def _service_figures(url: str) -> dict[str, float]:
    """The service's own figures from /metrics (OpenMetrics text: `name value` lines)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(spanwarden_\w+) (\S+)$", text, re.M)}


def _ms(figures: dict[str, float], name: str) -> float | None:
    return round(figures[name] * 1000, 1) if name in figures else None


def run(agents: int = 500, seconds: float = 30.0, batch: int = 100, clients: int = 4, seed: int = 0,
        max_requests: int = 1_000_000, churn: float = 0.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`env`: extra settings for the service (the shipped defaults otherwise)."""
    state = Path(tempfile.mkdtemp(prefix="spanwarden-soak-"))
    port = free_port()
    full_env = {**os.environ, "SPANWARDEN_PORT": str(port), "SPANWARDEN_STATE_DIR": str(state),
                "SPANWARDEN_ADMIN_TOKEN": ADMIN, "SPANWARDEN_DATADOG_EXPORT": "off", **(env or {})}
    with open(state / "serve.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "spanwarden.cli", "serve"], env=full_env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, server, "spanwarden serve", 60.0)
        return _drive(f"http://127.0.0.1:{port}", server.pid, agents, seconds, batch, clients, seed,
                      max_requests, churn)
    finally:
        server.terminate()
        server.wait(60)


class _Load:
    """The agents' traffic, handed out a request at a time to the client threads."""

    def __init__(self, agents: int, seconds: float, batch: int, seed: int, max_requests: int,
                 churn: float) -> None:
        self.traffic = [AgentTraffic(f"soak-{i:05d}", seed) for i in range(agents)]
        self.batch, self.seed, self.churn, self.max_requests = batch, seed, churn, max_requests
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.spans = self.dropped = self.requests = self.next = self.churned = 0
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.warm_at = self.started + seconds / 2

    def take(self) -> tuple[bytes, int] | None:
        """The next request's body and its span count (written from the traffic's own bytes:
        soak_traffic.py, the same spans `to_request(agent.batch(...))` would give)."""
        with self.lock:  # one agent's batches stay in order
            if self.requests >= self.max_requests or time.monotonic() >= self.deadline:
                return None
            self.requests += 1
            due = int((time.monotonic() - self.started) * self.churn)
            if self.churned < due:
                self.churned += 1
                newcomer = AgentTraffic(f"churn-{self.churned:07d}", self.seed)
                return newcomer.body(self.batch, time.time()), self.batch
            agent = self.traffic[self.next % len(self.traffic)]
            self.next += 1
            return agent.body(self.batch, time.time()), self.batch

    def warmed(self) -> bool:
        return self.next >= len(self.traffic) and time.monotonic() >= self.warm_at

    def done(self, elapsed: float, ok: bool, spans: int) -> None:
        with self.lock:
            self.latencies.append(elapsed)
            if ok:
                self.spans += spans
            else:
                self.dropped += 1


def _drive(url: str, pid: int, agents: int, seconds: float, batch: int, clients: int, seed: int,
           max_requests: int, churn: float) -> dict[str, Any]:
    load = _Load(agents, seconds, batch, seed, max_requests, churn)
    rss: dict[str, float] = {}

    def client() -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)  # kept alive, as an exporter's
        while (taken := load.take()) is not None:
            body, spans = taken
            started = time.perf_counter()
            try:
                connection.request("POST", "/v1/traces", body, HEADERS)
                answer = connection.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnects on the next request
                ok = False
            load.done(time.perf_counter() - started, ok, spans)
            if "warm" not in rss and load.warmed():
                with load.lock:
                    if "warm" not in rss:
                        rss["warm"], rss["warm_at"] = _rss_mb(pid), time.monotonic() - load.started
        connection.close()

    killer = KillsInOwnProcess(url, ADMIN, "soak-victim", load.deadline)  # the guarded agent's own process
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started, cpu = time.perf_counter(), time.process_time()
    service_cpu = psutil.Process(pid).cpu_times()
    decode_cpu = _children_cpu(pid)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - cpu  # this process: the clients (the guarded agent has its own)
    served = psutil.Process(pid).cpu_times()
    loop_process_cpu_s = served.user + served.system - service_cpu.user - service_cpu.system
    decode_cpu_s = sum(cpu - decode_cpu.get(child, 0.0) for child, cpu in _children_cpu(pid).items())
    service_cpu_s = loop_process_cpu_s + decode_cpu_s
    kills = killer.join(60)
    rss_end = _rss_mb(pid)
    decode_rss = _children_rss_mb(pid)
    service = _service_figures(url)
    warm = rss.get("warm")  # None: the run was too short to see every agent
    return {"spans_per_s": round(load.spans / wall, 1),
            "p99_ingest_ms": round(float(np.percentile(load.latencies, 99)) * 1000, 2) if load.latencies else None,
            "kill_p99_ms_under_load": kills.p99_ms(), "missed": kills.missed, "kills": len(kills.latencies_ms),
            "max_loop_stall_ms": _ms(service, "spanwarden_loop_stall_max_seconds"),
            "max_loop_held_ms": _ms(service, "spanwarden_loop_held_max_seconds"),
            "new_agents_refused": service.get("spanwarden_new_agents_refused_total"),
            "agents_known": service.get("spanwarden_agents"),
            "rss_warm_mb": None if warm is None else round(warm, 1), "rss_end_mb": round(rss_end, 1),
            "rss_mb_start": None if warm is None else round(warm, 1), "rss_mb_end": round(rss_end, 1),
            "warm_at_s": None if warm is None else round(rss["warm_at"], 1),
            "records_clamped": service.get("spanwarden_records_clamped_total"),
            "dropped": load.dropped, "agents": agents, "churned_agents": load.churned, "seconds": round(wall, 1),
            "spans_per_request": batch, "requests": load.requests,
            "client_cpu_per_s": round(client_cpu / wall, 3), "service_cpu_per_s": round(service_cpu_s / wall, 3),
            "service_cpu_us_per_span": round(service_cpu_s / load.spans * 1e6, 1) if load.spans else None,
            "loop_process_cpu_us_per_span": (round(loop_process_cpu_s / load.spans * 1e6, 1) if load.spans
                                             else None),
            "decode_cpu_per_s": round(decode_cpu_s / wall, 3), "decode_rss_mb": round(decode_rss, 1)}
