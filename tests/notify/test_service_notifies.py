"""`serve` tells people: a halt and a tool-approval request reach the loopback Slack and PagerDuty receivers
as soon as they are audited, and are resolved when a human answers or resumes."""

from __future__ import annotations

import time

import requests

from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.notify.receivers import receiver

KEY = "b" * 32


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_halts_and_approval_requests_are_sent_and_resolved(tmp_path):
    with receiver("slack") as slack, receiver("pagerduty") as pd:
        service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                           slack_webhook_url=slack.url, pagerduty_routing_key=KEY,
                                           pagerduty_url=pd.url, console_url="http://127.0.0.1:9/console"))
        url = f"http://127.0.0.1:{service.start_in_thread()}"
        admin = {"Authorization": "Bearer t"}
        try:
            kill = {"command": "kill", "agent": "billing-bot", "reason": "runaway", "actor": "omar"}
            requests.post(f"{url}/v1/commands", json=kill, headers=admin, timeout=5).raise_for_status()
            assert wait_for(lambda: len(pd.received) == 1)
            assert pd.received[0]["body"]["event_action"] == "trigger"
            assert pd.received[0]["body"]["payload"]["severity"] == "critical"
            assert "billing-bot halted" in slack.received[0]["body"]["text"]
            resume = {"command": "resume", "agent": "billing-bot", "reason": "fixed"}
            requests.post(f"{url}/v1/commands", json=resume, headers=admin, timeout=5).raise_for_status()
            assert wait_for(lambda: len(pd.received) == 2)
            assert (pd.received[1]["body"]["event_action"], pd.received[1]["body"]["dedup_key"]) == (
                "resolve", pd.received[0]["body"]["dedup_key"])

            opened = requests.post(f"{url}/v1/approvals", timeout=5, json={
                "agent": "billing-bot", "tool": "refund_payment", "arguments_digest": "d"})
            assert opened.status_code == 200, opened.text
            request_id = opened.json()["id"]
            assert wait_for(lambda: len(pd.received) == 3)
            assert pd.received[2]["body"]["dedup_key"].endswith(f"approval_request:{request_id}")
            button = slack.received[2]["body"]["blocks"][-1]["elements"][0]
            assert button["url"] == f"http://127.0.0.1:9/console/approvals/{request_id}"
            requests.post(f"{url}/v1/approvals/{request_id}/answer", json={"approve": True, "reason": "ok"},
                          headers=admin, timeout=5).raise_for_status()
            assert wait_for(lambda: len(pd.received) == 4)
            assert pd.received[3]["body"]["event_action"] == "resolve"
            assert slack.problems == [] and pd.problems == []
        finally:
            service.stop()


def test_a_failing_destination_is_audited_once(tmp_path):
    from spanwarden.enforcers.audit_log import read_entries

    with receiver("slack") as slack:
        slack.fail_next = [404] * 10  # Slack answers 404 no_service for a revoked webhook
        service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never",
                                           slack_webhook_url=slack.url))
        url = f"http://127.0.0.1:{service.start_in_thread()}"
        try:
            for agent in ("a", "b", "c"):
                requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5, json={
                    "command": "kill", "agent": agent, "reason": "test"}).raise_for_status()
            assert wait_for(lambda: service.notify is not None and service.notify.notifier.failed["slack"] == 3)
            time.sleep(0.3)
        finally:
            service.stop()
    failing = [e for _, e in read_entries(tmp_path / "audit.jsonl")
               if e.kind == "service" and e.data.get("notify") == "slack"]
    assert len(failing) == 1 and "HTTP 404" in failing[0].reason
