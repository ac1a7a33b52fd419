"""The in-agent guard: halts raise at span start, throttles pace calls, fail modes when the channel is lost."""

from __future__ import annotations

import socket

import pytest
import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanwarden import AgentHalted
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard, GuardSpanProcessor
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.settings import Settings


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def watcher_with(decision: Decision | None, clock=None) -> DecisionWatcher:
    """A real watcher that is never started, holding a given decision as if it had polled it."""
    watcher = DecisionWatcher("http://127.0.0.1:9", "a", clock=clock or Clock())
    watcher.failing_since, watcher.ever_connected = None, True
    if decision is not None:
        watcher.current = decision
    return watcher


def decision(action: Action, version=1, expires=None, rate=None) -> Decision:
    return Decision("a", action, "because", "policy:r@1", 0.0, version, expires, rate)


def test_halt_raises_with_who_and_why():
    guard = Guard("a", watcher_with(decision(Action.HALT)))
    with pytest.raises(AgentHalted, match="halted by policy:r@1: because") as info:
        guard.check()
    assert info.value.decided_by == "policy:r@1" and info.value.version == 1 and guard.refused == 1


def test_expired_and_warn_decisions_let_calls_through():
    clock = Clock(5000)
    assert Guard("a", watcher_with(decision(Action.HALT, expires=4000)), clock=clock).admit() == 0
    assert Guard("a", watcher_with(decision(Action.WARN)), clock=clock).admit() == 0


def test_throttle_paces_calls_on_a_token_bucket():
    clock = Clock()
    guard = Guard("a", watcher_with(decision(Action.THROTTLE, rate=2.0)), clock=clock)
    assert guard.admit() == 0  # a new throttle starts with one call's worth, not a full burst
    assert guard.admit() == pytest.approx(0.5)
    clock.t += 0.5
    assert guard.admit() == 0 and guard.admit() == pytest.approx(0.5)
    slept = []
    guard.sleep = lambda s: (slept.append(s), setattr(clock, "t", clock.t + s))
    guard.check()
    assert slept == [pytest.approx(0.5)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_fail_mode_when_the_control_channel_is_lost(mode):
    clock = Clock(0.0)
    watcher = DecisionWatcher(f"http://127.0.0.1:{_closed_port()}", "a", clock=clock)
    watcher.ever_connected = True  # it had answered once, then was lost
    with pytest.raises(requests.ConnectionError):
        watcher.poll_once()
    watcher.failing_since = 0.0
    guard = Guard("a", watcher, fail_mode=mode, out_of_touch_s=30)
    assert guard.admit() == 0  # not out of touch for long yet: the decision last received applies
    clock.t = 31.0
    if mode == "open":
        assert guard.admit() == 0
    else:
        with pytest.raises(AgentHalted, match="fail mode is closed"):
            guard.admit()


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_before_any_answer_a_call_waits_then_the_fail_mode_decides(mode):
    watcher = DecisionWatcher(f"http://127.0.0.1:{_closed_port()}", "a").start()  # never answers
    mono = Clock(0.0)
    guard = Guard("a", watcher, fail_mode=mode, first_contact_s=0.3, monotonic=mono)
    mono.t = 0.2  # 0.1 s of the hold left: the call waits that long for a first answer
    try:
        if mode == "open":
            assert guard.admit() == 0
        else:
            with pytest.raises(AgentHalted, match="no answer from the control channel yet"):
                guard.admit()
    finally:
        watcher.stop()


def test_a_call_made_before_the_first_answer_waits_for_it(tmp_path):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5,
                  json={"command": "kill", "agent": "a", "reason": "before the agent started",
                        "new": True}).raise_for_status()
    watcher = DecisionWatcher(url, "a", wait_s=1)
    guard = Guard("a", watcher, first_contact_s=10)
    watcher.start()  # the call below is made before the first poll can have answered
    try:
        with pytest.raises(AgentHalted, match="before the agent started"):
            guard.check("refund_payment")
        assert watcher.heard and "refund_*" in watcher.approval_tools
    finally:
        watcher.stop()
        service.stop()


def test_span_processor_refuses_llm_spans_of_a_halted_agent(tmp_path):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    watcher = DecisionWatcher(url, "agent-x", wait_s=5).start()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-x"}))
    provider.add_span_processor(GuardSpanProcessor(Guard("agent-x", watcher)))
    tracer = provider.get_tracer("t")
    try:
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):
            pass
        requests.post(f"{url}/v1/commands", json={"command": "kill", "agent": "agent-x", "new": True,
                                                  "actor": "oncall", "reason": "test"},
                      headers={"Authorization": "Bearer t"}, timeout=5).raise_for_status()
        assert watcher.wait_for_version(1, 5)
        with pytest.raises(AgentHalted), tracer.start_as_current_span(
                "execute_tool delete_all", attributes={"gen_ai.tool.name": "delete_all"}):
            pytest.fail("the tool call must not run")
        with tracer.start_as_current_span("plain work"):  # not an LLM or tool call: untouched
            pass
        requests.post(f"{url}/v1/commands", json={"command": "resume", "agent": "agent-x", "actor": "oncall"},
                      headers={"Authorization": "Bearer t"}, timeout=5).raise_for_status()
        assert watcher.wait_for_version(2, 5)
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):
            pass
    finally:
        provider.shutdown()
        service.stop()


def test_tool_decorator_guards_code_without_spans():
    watcher = watcher_with(decision(Action.ALLOW, version=0))
    guard = Guard("a", watcher)
    calls = []

    @guard.tool()
    def delete_rows(table: str) -> str:
        calls.append(table)
        return "done"

    assert delete_rows("t1") == "done"
    watcher.current = decision(Action.HALT, version=2)
    with pytest.raises(AgentHalted):
        delete_rows("t2")
    assert calls == ["t1"] and delete_rows.__name__ == "delete_rows"


def test_kill_and_resume_of_one_tool_or_model_leave_the_rest_alone(tmp_path):
    def start_service():
        svc = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
        return svc, f"http://127.0.0.1:{svc.start_in_thread()}"

    def command(url, body):
        answer = requests.post(f"{url}/v1/commands", json={**body, "new": True}, timeout=5,
                               headers={"Authorization": "Bearer t"})
        answer.raise_for_status()
        return answer.json()

    service, url = start_service()
    watcher = DecisionWatcher(url, "agent-s", wait_s=5).start()
    guard = Guard("agent-s", watcher)
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-s"}))
    provider.add_span_processor(GuardSpanProcessor(guard))
    tracer = provider.get_tracer("t")

    def call(tool="", model=""):
        attributes = {"gen_ai.tool.name": tool} if tool else {"gen_ai.operation.name": "chat",
                                                              "gen_ai.request.model": model}
        try:
            with tracer.start_as_current_span("call", attributes=attributes):
                return "ran"
        except AgentHalted:
            return "refused"

    try:
        v1 = command(url, {"command": "kill", "agent": "agent-s", "tool": "purge_*", "reason": "bad purges"})
        v2 = command(url, {"command": "kill", "agent": "agent-s", "model": "claude-*", "reason": "vendor outage"})
        assert v1["scope"] == "tool:purge_*" and v2["version"] > v1["version"]
        assert watcher.wait_for_version(v2["version"], 5)
        assert [call(tool="purge_cache"), call(tool="search"), call(model="claude-sonnet-4-5"),
                call(model="gpt-4o")] == ["refused", "ran", "refused", "ran"]
        assert watcher.current.action is Action.ALLOW  # the agent-wide decision is untouched
        v3 = command(url, {"command": "resume", "agent": "agent-s", "tool": "purge_*"})
        assert watcher.wait_for_version(v3["version"], 5)
        assert [call(tool="purge_cache"), call(model="claude-sonnet-4-5")] == ["ran", "refused"]
        service.stop()
        service, url = start_service()  # what is in force survives a restart
        view = requests.get(f"{url}/v1/decisions/agent-s", timeout=5).json()
        assert [d["scope"] for d in view["scoped"]] == ["model:claude-*"]
        again = command(url, {"command": "kill", "agent": "agent-s", "tool": "purge_*", "reason": "again"})
        assert again["version"] > v3["version"]  # versions keep growing across the restart
        both = {"command": "kill", "agent": "agent-s", "tool": "x", "model": "y", "reason": "r"}
        refused = requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5, json=both)
        assert refused.status_code == 400
    finally:
        watcher.stop()
        provider.shutdown()
        service.stop()


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_halt_already_received_holds_when_the_channel_is_cut(tmp_path, mode):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                       long_poll_s=1))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    clock = Clock(0.0)
    watcher = DecisionWatcher(url, "a", wait_s=1, clock=clock).start()
    try:
        killed = requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5,
                               json={"command": "kill", "agent": "a", "reason": "cut test", "new": True}).json()
        assert watcher.wait_for_version(killed["version"], 10)
        service.stop()  # the channel is cut (the agent could also cut it itself)
        guard = Guard("a", watcher, fail_mode=mode, out_of_touch_s=30)
        for t in (0.0, 31.0, 3600.0):  # whatever the fail mode and however long out of touch
            clock.t = t
            with pytest.raises(AgentHalted):
                guard.admit()
    finally:
        watcher.stop()
