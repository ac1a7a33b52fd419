"""Destructive tool calls in prod wait for a human: approve lets the call go, deny or silence refuses it;
every request and answer is audited with the agent and the person."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanwarden import AgentHalted
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard, GuardSpanProcessor
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.approvals import ApprovalBook
from spanwarden.enforcers.roles import Role, add_token
from spanwarden.settings import Settings


@pytest.fixture
def setup(tmp_path):
    oncall = add_token(tmp_path / "tokens.yaml", "omar", Role.ONCALL)
    viewer = add_token(tmp_path / "tokens.yaml", "vera", Role.VIEWER)
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    yield service, url, oncall, viewer, tmp_path
    service.stop()


def agent(url, environment):
    watcher = DecisionWatcher(url, f"agent-{environment}", wait_s=5, environment=environment).start()
    deadline = time.monotonic() + 5
    while not watcher.ever_connected and time.monotonic() < deadline:
        time.sleep(0.01)
    provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{environment}"}))
    provider.add_span_processor(GuardSpanProcessor(Guard(f"agent-{environment}", watcher)))
    return provider.get_tracer("t"), watcher


def answer_when_pending(url, token, approve, reason=""):
    def run():
        for _ in range(500):
            pending = requests.get(f"{url}/v1/approvals", headers={"Authorization": f"Bearer {token[1]}"},
                                   timeout=5).json()["pending"]
            if pending:
                requests.post(f"{url}/v1/approvals/{pending[0]['id']}/answer", timeout=5,
                              json={"approve": approve, "reason": reason},
                              headers={"Authorization": f"Bearer {token[0]}"}).raise_for_status()
                return
            time.sleep(0.01)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_approved_call_goes_denied_call_is_refused_and_both_are_audited(setup):
    service, url, oncall, viewer, state = setup
    tracer, watcher = agent(url, "prod")
    assert "delete_*" in watcher.approval_tools
    ran = []
    helper = answer_when_pending(url, (oncall, viewer), approve=True)
    with tracer.start_as_current_span("execute_tool delete_rows", attributes={"gen_ai.tool.name": "delete_rows"}):
        ran.append("delete")
    helper.join()
    helper = answer_when_pending(url, (oncall, viewer), approve=False, reason="not during the audit")
    with pytest.raises(AgentHalted, match="denied") as info, tracer.start_as_current_span(
            "execute_tool drop_table", attributes={"gen_ai.tool.name": "drop_table"}):
        ran.append("drop")
    helper.join()
    assert ran == ["delete"] and info.value.decided_by == "human:omar"
    with tracer.start_as_current_span("execute_tool search", attributes={"gen_ai.tool.name": "search"}):
        ran.append("search")  # not destructive: no approval asked
    watcher.stop()
    service.stop()
    entries = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    approvals = [(e["actor"], e["data"]["tool"], e["data"]["status"]) for e in entries if e["kind"] == "approval"]
    assert approvals == [("agent:agent-prod", "delete_rows", "pending"), ("human:omar", "delete_rows", "approved"),
                         ("agent:agent-prod", "drop_table", "pending"), ("human:omar", "drop_table", "denied")]


def test_no_approval_outside_the_policy_environments(setup):
    service, url, *_ = setup
    tracer, watcher = agent(url, "dev")
    assert watcher.approval_tools == ()
    with tracer.start_as_current_span("execute_tool delete_rows", attributes={"gen_ai.tool.name": "delete_rows"}):
        pass
    watcher.stop()


def test_viewers_cannot_answer(setup):
    service, url, oncall, viewer, _ = setup
    opened = requests.post(f"{url}/v1/approvals", json={"agent": "a", "tool": "delete_x", "environment": "prod"},
                           timeout=5).json()
    assert opened["required"] and opened["status"] == "pending"
    refused = requests.post(f"{url}/v1/approvals/{opened['id']}/answer", json={"approve": True}, timeout=5,
                            headers={"Authorization": f"Bearer {viewer}"})
    assert refused.status_code == 403


def test_unanswered_requests_expire():
    book = ApprovalBook()
    request, new = book.open("a", "delete_x", "d", now_s=0.0, timeout_s=10.0)
    assert new and book.open("a", "delete_x", "d", 5.0, 10.0) == (request, False)  # the same call, reused
    expired, just_now = book.get(request.id, 10.0)
    assert expired.status == "expired" and just_now
    with pytest.raises(ValueError, match="already expired"):
        book.answer(request.id, True, "human:x", "", 11.0)
