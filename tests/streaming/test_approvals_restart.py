"""Tool approvals on the Kafka runtime survive a gateway restart: the gateway reads its own audit log back,
so a request pending when it stopped is pending again and can be answered, and an answered one stays so."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from spanwarden.enforcers.approvals import ApprovalBook
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry
from spanwarden.streaming import approvals_replay
from spanwarden.streaming.local_stack import LocalBroker
from tests.streaming.test_gateway_end_to_end import TOKEN, running_gateway

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ASK = {"agent": "agent-a", "tool": "delete_rows", "environment": "prod"}


def test_entries_that_are_not_tool_approvals_are_passed_over() -> None:
    book = ApprovalBook(max_requests=2)
    access = AuditEntry(0, 1.0, "approval", AgentRef("a"), "x", "r", (), "v", {"kind": "access", "id": "q"}, "")
    other = AuditEntry(0, 1.0, "decision", AgentRef("a"), "x", "r", (), "v", {"id": "z", "tool": "t"}, "")
    assert not approvals_replay.note(book, access) and not approvals_replay.note(book, other)
    for n in range(3):
        data = {"id": f"req-{n}", "agent_id": "a", "tool": "t", "arguments_digest": "", "created_s": 1.0,
                "expires_s": 9e9}
        entry = AuditEntry(0, 1.0, "approval", AgentRef("a"), "x", "r", (), "v", data, "")
        assert approvals_replay.note(book, entry)
    assert list(book.requests) == ["req-1", "req-2"]  # bounded: the oldest went


@pytest.mark.slow
def test_a_pending_approval_survives_a_gateway_restart(broker: LocalBroker, tmp_path: Path) -> None:
    first = running_gateway(broker, tmp_path)
    url, _ = next(first)
    try:
        pending = requests.post(f"{url}/v1/approvals", timeout=10, json={**ASK, "arguments_digest": "d1"}).json()
        answered = requests.post(f"{url}/v1/approvals", timeout=10, json={**ASK, "arguments_digest": "d2"}).json()
        assert pending["status"] == answered["status"] == "pending"
        done = requests.post(f"{url}/v1/approvals/{answered['id']}/answer", headers=AUTH, timeout=10,
                             json={"approve": False, "reason": "not today"})
        assert done.json()["status"] == "denied"
    finally:
        next(first, None)  # the gateway stops

    second = running_gateway(broker, tmp_path)
    url, _ = next(second)
    try:
        listed = requests.get(f"{url}/v1/approvals", headers=AUTH, timeout=10).json()["pending"]
        assert [r["id"] for r in listed] == [pending["id"]]
        assert requests.get(f"{url}/v1/approvals/{answered['id']}", timeout=10).json()["status"] == "denied"
        again = requests.post(f"{url}/v1/approvals", timeout=10, json={**ASK, "arguments_digest": "d1"}).json()
        assert again["id"] == pending["id"]  # the same call asks again: the same request, not a new one
        approved = requests.post(f"{url}/v1/approvals/{pending['id']}/answer", headers=AUTH, timeout=10,
                                 json={"approve": True, "reason": "ticket 42"})
        assert approved.json()["status"] == "approved"
    finally:
        next(second, None)
