"""The guard knows before the first call, tested with real processes: a `spanwarden serve` on loopback that
requires agent tokens, and an agent process using the real OTel SDK through `spanwarden.instrument` (its
token in OTEL_EXPORTER_OTLP_HEADERS, as for its spans). A halted agent that restarts — and one restarted
after the service restarted too — has its very first call refused; a destructive tool called right after
`instrument()` waits for a human's answer, runs when approved and is refused when denied."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spanwarden.enforcers.roles import Role, add_token
from spanwarden.streaming.local_stack import _wait_for_port, free_port

pytestmark = pytest.mark.slow
AGENT = "restart-bot"

AGENT_SCRIPT = textwrap.dedent("""
    import sys

    import spanwarden

    handle = spanwarden.instrument(agent_id="restart-bot", environment="prod", endpoint=sys.argv[1],
                                   set_global=False)
    print("HEARD", handle.guard.watcher.heard, flush=True)
    if sys.argv[2] == "chat":  # the first thing it does: one LLM call
        tracer = handle.provider.get_tracer("agent")
        try:
            with tracer.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat",
                                                                         "gen_ai.request.model": "gpt-4o"}):
                print("CALLED", flush=True)
        except spanwarden.AgentHalted as exc:
            print("HALTED", exc.decided_by, flush=True)
    else:  # the first thing it does: a refund

        @handle.guard.tool()
        def refund_payment(order):
            print("REFUNDED", order, flush=True)

        try:
            refund_payment("order-7")
        except spanwarden.AgentHalted as exc:
            print("REFUSED", exc.reason, flush=True)
    handle.shutdown()
""")


class Serve:
    """`spanwarden serve` in its own process, requiring agent tokens on spans, leases and approvals."""

    def __init__(self, state: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SPANWARDEN_PORT": str(port), "SPANWARDEN_STATE_DIR": str(state),
               "SPANWARDEN_INGEST_AUTH": "required", "SPANWARDEN_AUDIT_FSYNC": "never"}
        self.process = subprocess.Popen([sys.executable, "-m", "spanwarden.cli", "serve"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(port, self.process, "spanwarden serve", 30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    tokens = tmp_path / "state" / "tokens.yaml"
    agent_token = add_token(tokens, AGENT, Role.AGENT, (AGENT,))
    oncall = add_token(tokens, "olga", Role.ONCALL)
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    port = free_port()
    served = {"serve": Serve(tmp_path / "state", port)}
    agent_env = {**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{agent_token}",
                 "SPANWARDEN_INSTRUMENTATIONS": "none", "OTEL_BSP_SCHEDULE_DELAY": "100"}

    def agent(first: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(script), served["serve"].url, first], env=agent_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def restart_service() -> None:
        served["serve"].stop()
        served["serve"] = Serve(tmp_path / "state", port)

    def command(body: dict[str, Any]) -> None:
        requests.post(f"{served['serve'].url}/v1/commands", json={**body, "agent": AGENT, "new": True},
                      headers={"Authorization": f"Bearer {oncall}"}, timeout=10).raise_for_status()

    try:
        yield {"agent": agent, "command": command, "restart_service": restart_service, "oncall": oncall,
               "url": lambda: served["serve"].url}
    finally:
        served["serve"].stop()


def output(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    return out


def test_a_restarted_halted_agents_first_call_is_refused(world):
    assert output(world["agent"]("chat")).split("\n")[:2] == ["HEARD True", "CALLED"]
    world["command"]({"command": "kill", "reason": "runaway spend"})
    assert "HALTED human:olga" in output(world["agent"]("chat"))  # the restarted process, first call
    world["restart_service"]()
    assert "HALTED human:olga" in output(world["agent"]("chat"))  # and after the service restarted too
    world["command"]({"command": "resume"})
    assert "CALLED" in output(world["agent"]("chat"))


def pending(world) -> list[dict[str, Any]]:
    return requests.get(f"{world['url']()}/v1/approvals", timeout=5,
                        headers={"Authorization": f"Bearer {world['oncall']}"}).json()["pending"]


def answer_first_request(world, process: subprocess.Popen[str], approve: bool) -> None:
    deadline = time.monotonic() + 30
    while not (waiting := pending(world)) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()  # it must be waiting, not done
        time.sleep(0.05)
    assert waiting and waiting[0]["tool"] == "refund_payment" and waiting[0]["agent_id"] == AGENT
    time.sleep(0.3)
    assert process.poll() is None  # still held while nobody answers
    requests.post(f"{world['url']()}/v1/approvals/{waiting[0]['id']}/answer", timeout=5,
                  json={"approve": approve, "reason": "checked the order" if approve else "not this one"},
                  headers={"Authorization": f"Bearer {world['oncall']}"}).raise_for_status()


def test_a_destructive_tool_right_after_instrument_waits_for_its_approval(world):
    approved = world["agent"]("refund")
    answer_first_request(world, approved, approve=True)
    assert "REFUNDED order-7" in output(approved)
    denied = world["agent"]("refund")
    answer_first_request(world, denied, approve=False)
    out = output(denied)
    assert "REFUSED" in out and "denied" in out and "REFUNDED" not in out
