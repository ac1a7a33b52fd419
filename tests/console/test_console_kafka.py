"""The same console on `serve --kafka`: a real broker, a real worker process and the gateway. A runaway
agent halted by its worker shows in the fleet, and resuming it from the console goes through the worker and
is audited with the signed-in name."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from spanwarden.enforcers.audit_query import entries
from spanwarden.enforcers.roles import Role, add_token
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.console.conftest import page_csrf, sign_in
from tests.detectors.traffic import T0, merged, normal, runaway
from tests.streaming.conftest import PARTITIONS
from tests.streaming.test_gateway_end_to_end import _export, running_gateway

pytestmark = pytest.mark.slow


def _status_of(url: str, token: str, agent: str) -> dict[str, str] | None:
    """The agent's row of /v1/status, with its agent-wide action as `decision`."""
    status = requests.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    row = next((a for a in status["agents"] if a["agent"] == agent), None)
    return None if row is None else {**row, "decision": row["decision"]["action"]}


def test_the_console_on_the_kafka_runtime(broker: LocalBroker, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANWARDEN_TRUST_SPAN_TIME", "1")  # the traffic carries simulated times
    oncall = add_token(tmp_path / "gw" / "tokens.yaml", "kafka-oncall", Role.ONCALL)
    viewer = add_token(tmp_path / "gw" / "tokens.yaml", "kafka-viewer", Role.VIEWER)
    gateway = running_gateway(broker, tmp_path)
    url, _ = next(gateway)
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
    try:
        _export(url, "agent-a", merged(normal(3, 2), runaway(T0 + 2 * 3600, 60)))
        deadline = time.monotonic() + 60
        while (row := _status_of(url, oncall, "agent-a")) is None or row["decision"] != "halt":
            assert time.monotonic() < deadline, f"agent-a was not halted through Kafka: {row}"
            time.sleep(0.5)
        session = sign_in(f"{url}/", oncall)
        fleet = session.get(f"{url}/", timeout=10)
        assert fleet.status_code == 200 and 'data-agent="agent-a"' in fleet.text and "halt" in fleet.text
        assert "search · prod · ana@example.com" in fleet.text  # who it belongs to, from the workers' directory
        page = session.get(f"{url}/agents/agent-a", timeout=10)
        assert page.status_code == 200 and 'id="command-form"' in page.text
        done = session.post(f"{url}/agents/agent-a/command", timeout=60, data={
            "csrf": page_csrf(page.text), "command": "resume", "reason": "resumed from the console on kafka"})
        assert done.status_code == 200 and "is now allow" in done.text, done.text[-2000:]
        assert (_status_of(url, oncall, "agent-a") or {}).get("decision") == "allow"
        scoped = session.post(f"{url}/agents/agent-a/command", timeout=60, data={
            "csrf": page_csrf(page.text), "command": "throttle", "tool": "send_*", "rate_per_s": "1",
            "reason": "scoped from the console on kafka"})
        assert "is now throttle" in scoped.text, scoped.text[-2000:]
        assert "throttle [tool:send_*]" in session.get(f"{url}/", timeout=10).text  # beside the agent-wide one
        watcher = sign_in(f"{url}/", viewer)
        refused = watcher.post(f"{url}/agents/agent-a/command", allow_redirects=False, timeout=10, data={
            "csrf": page_csrf(watcher.get(f"{url}/agents/agent-a", timeout=10).text), "command": "kill",
            "reason": "viewer tries on kafka"})
        assert refused.status_code == 403
        for path in ("approvals", "audit?agent=agent-a"):
            assert session.get(f"{url}/{path}", timeout=10).status_code == 200, path
    finally:
        worker.stop()
        next(gateway, None)
    mine = [e for e in entries(tmp_path / "gw" / "audit.jsonl", agent="agent-a")
            if "console on kafka" in e.reason or "viewer tries" in e.reason]
    assert mine and {e.actor for e in mine} == {"human:kafka-oncall"}
