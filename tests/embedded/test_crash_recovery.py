"""kill -9 of the embedded service at random moments while spans flow and commands are given: after each
restart the audit chain verifies, every acknowledged command and decision is there, decisions in force are
unchanged, and the baselines come back (as of the last snapshot)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from spanwarden.collector.otlp_encode import to_request
from spanwarden.enforcers.audit_log import AuditEntry, read_entries, verify
from spanwarden.streaming.local_stack import _wait_for_port, free_port
from tests.detectors.traffic import T0, merged, normal, runaway

pytestmark = pytest.mark.slow
TOKEN = "crash-test-token"
AGENTS = ["agent-a", "agent-b", "agent-c", "agent-d"]


def _batches() -> list[bytes]:
    records = merged(*(normal(i, 1.5, agent=a) for i, a in enumerate(AGENTS)),
                     runaway(T0 + 1.4 * 3600, 60, agent="agent-a"))
    return [to_request(records[i:i + 50]).SerializeToString() for i in range(0, len(records), 50)]


class Service:
    def __init__(self, state: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SPANWARDEN_PORT": str(self.port), "SPANWARDEN_STATE_DIR": str(state),
               "SPANWARDEN_ADMIN_TOKEN": TOKEN, "SPANWARDEN_SNAPSHOT_INTERVAL_S": "0.3",
               "SPANWARDEN_AUDIT_FSYNC": "always"}
        self.process = subprocess.Popen([sys.executable, "-m", "spanwarden.cli", "serve"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, self.process, "spanwarden serve", 30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def _command(url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    try:
        response = requests.post(f"{url}/v1/commands", json=body, timeout=5,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(11)
    batches = _batches()
    cursor = 0  # like an OTLP exporter: what was not acknowledged is sent again
    acknowledged_spans_batches = 0
    commands: list[dict[str, Any]] = []  # acknowledged decisions from commands
    plan = [{"command": "kill", "agent": "agent-c", "reason": "crash-test kill c"},
            {"command": "throttle", "agent": "agent-d", "reason": "crash-test throttle d", "rate_per_s": 2},
            {"command": "kill", "agent": "agent-b", "reason": "crash-test kill b"}]
    for round_ in range(3):
        service = Service(tmp_path)
        stop = threading.Event()

        def send(service: Service = service, stop: threading.Event = stop) -> None:
            nonlocal cursor, acknowledged_spans_batches
            while not stop.is_set() and cursor < len(batches):
                try:
                    ok = requests.post(f"{service.url}/v1/traces", data=batches[cursor], timeout=5,
                                       headers={"Content-Type": "application/x-protobuf"}).status_code == 200
                except requests.RequestException:
                    return
                if ok:
                    cursor += 1
                    acknowledged_spans_batches += 1

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(rng.uniform(0.2, 0.8))
        decided = _command(service.url, plan[round_])
        if decided is not None:
            commands.append({**decided, "reason_given": plan[round_]["reason"]})
        time.sleep(rng.uniform(0.1, 1.0))
        service.kill()  # mid-stream: the sender is still posting
        stop.set()
        sender.join(10)

    assert acknowledged_spans_batches > 0 and commands, "the rounds should have got some work acknowledged"
    audit_path = tmp_path / "audit.jsonl"
    service = Service(tmp_path)  # the service repairs a torn final write, then must verify
    try:
        health = requests.get(f"{service.url}/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["records"] > 0  # baselines restored from the snapshot
        for decided in commands:
            now = requests.get(f"{service.url}/v1/decisions/{decided['agent_id']}", timeout=5).json()
            assert (now["action"], now["version"]) == (decided["action"], decided["version"])
    finally:
        service.process.terminate()
        service.process.wait(30)
    assert verify(audit_path).ok
    entries = [e for _, e in read_entries(audit_path) if isinstance(e, AuditEntry)]
    reasons = {e.reason for e in entries if e.kind == "command"}
    assert {c["reason_given"] for c in commands} <= reasons
    decisions = {(e.agent.id, e.data.get("version")) for e in entries if e.kind == "decision"}
    assert {(c["agent_id"], c["version"]) for c in commands} <= decisions
    assert sum(1 for e in entries if e.kind == "service" and e.reason == "service started") == 4
