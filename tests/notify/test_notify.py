"""Notices from audit entries, sent to loopback Slack, PagerDuty and signed-webhook receivers that check each
payload as the real services document it; retries, Retry-After, a bounded queue and failures reported once."""

from __future__ import annotations

import threading
import time

import pytest

from spanwarden.enforcers.audit_log import AgentRef, AuditLog, read_entries
from spanwarden.notify import notice as notices
from spanwarden.notify import webhook
from spanwarden.notify.dispatcher import Notifier
from spanwarden.notify.targets import Target, from_settings, parse_notices
from tests.notify.receivers import receiver

AGENT = AgentRef("billing-bot", "alice@example.com", "finance", "prod")
KEY = "a" * 32  # PagerDuty integration keys are 32 characters


def entries(tmp_path):
    """What the pipeline audits as an approval is asked for and answered, and an agent halted then resumed."""
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    log.append("approval", AGENT, "service", "refund_payment needs approval", 100.0, (), "v1",
               {"id": "ap-1", "agent_id": AGENT.id, "tool": "refund_payment", "status": "pending",
                "expires_s": 400.0})
    log.append("finding", AGENT, "detector:cost_velocity", "hourly budget runs out in 9 min", 110.0, (), "v1",
               {"kind": "budget_projection", "severity": "warning", "observed": 1.2, "baseline": 0.3})
    log.append("decision", AGENT, "policy:runaway@v1", "the same call 80 times in 2 min", 120.0, (), "v1",
               {"action": "halt", "scope": "", "version": 3, "findings": ["runaway_loop/same_call"]})
    log.append("approval", AGENT, "human:omar", "approved: refund checked", 130.0, (), "v1",
               {"id": "ap-1", "agent_id": AGENT.id, "tool": "refund_payment", "status": "approved"})
    log.append("decision", AGENT, "human:omar", "fixed the loop", 140.0, (), "v1",
               {"action": "allow", "scope": "", "version": 4})
    log.append("decision", AgentRef("other"), "policy:x@v1", "warn", 150.0, (), "v1",
               {"action": "allow", "scope": "", "version": 1})  # never halted: no "no longer halted"
    log.close()
    return [e for _, e in read_entries(tmp_path / "audit.jsonl")]


def test_notices_from_audit_entries(tmp_path):
    tracker = notices.Tracker()
    made = [tracker.admit(notices.from_entry(e)) for e in entries(tmp_path)]
    assert [(n.kind, n.key, n.resolved) for n in made if n] == [
        ("approval_request", "approval_request:ap-1", False), ("budget_warning",
                                                               "budget_warning:billing-bot:budget_projection",
                                                               False),
        ("halt", "halt:billing-bot", False), ("approval_request", "approval_request:ap-1", True),
        ("halt", "halt:billing-bot", True)]
    assert made[0].path == "/approvals/ap-1" and "spanwarden approve ap-1" in made[0].text


def test_a_repeated_trigger_waits(tmp_path):
    tracker = notices.Tracker(repeat_after_s=600)
    budget = [n for n in map(notices.from_entry, entries(tmp_path)) if n and n.kind == "budget_warning"][0]
    assert tracker.admit(budget) is budget
    assert tracker.admit(budget) is None
    later = notices.Notice(**{**budget.__dict__, "time_s": budget.time_s + 601})
    assert tracker.admit(later) is later


def test_slack_pagerduty_and_webhook_get_valid_payloads(tmp_path):
    tracker = notices.Tracker()
    made = [n for n in (tracker.admit(notices.from_entry(e)) for e in entries(tmp_path)) if n]
    with receiver("slack") as slack, receiver("pagerduty") as pd, receiver("webhook") as hook:
        targets = [Target("slack", slack.url), Target("pagerduty", pd.url, KEY),
                   Target("webhook", hook.url, "s3cret")]
        notifier = Notifier(targets, console_url="https://spanwarden.example.com/")
        for n in made:
            notifier.notify(n)
        assert notifier.flush(10)
        notifier.close()
        assert slack.problems == [] and pd.problems == []
        assert len(slack.received) == len(made) and len(hook.received) == len(made)
        button = slack.received[0]["body"]["blocks"][-1]["elements"][0]
        assert button["url"] == "https://spanwarden.example.com/approvals/ap-1"
        actions = [(r["body"]["event_action"], r["body"]["dedup_key"]) for r in pd.received]
        assert actions == [("trigger", "spanwarden:approval_request:ap-1"),
                           ("trigger", "spanwarden:budget_warning:billing-bot:budget_projection"),
                           ("trigger", "spanwarden:halt:billing-bot"),
                           ("resolve", "spanwarden:approval_request:ap-1"),
                           ("resolve", "spanwarden:halt:billing-bot")]
        assert pd.received[0]["body"]["links"][0]["href"].endswith("/approvals/ap-1")
        first = hook.received[0]
        assert webhook.verify("s3cret", first["raw"], first["headers"], time.time())
        assert not webhook.verify("wrong", first["raw"], first["headers"], time.time())
        assert not webhook.verify("s3cret", first["raw"] + b" ", first["headers"], time.time())
        assert notifier.sent == {"slack": 5, "pagerduty": 5, "webhook": 5}


def test_the_receivers_refuse_what_the_real_services_would():
    """The stand-ins can fail: a payload over Slack's limits, or a PagerDuty event without a summary."""
    with receiver("slack") as slack, receiver("pagerduty") as pd:
        import requests

        bad = {"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]}
        assert requests.post(slack.url, json=bad, timeout=5).status_code == 400
        event = {"routing_key": KEY, "event_action": "trigger", "payload": {"source": "s", "severity": "bad"}}
        answer = requests.post(pd.url, json=event, timeout=5)
        assert answer.status_code == 400 and answer.json()["status"] == "invalid event"


def test_5xx_and_429_are_retried_other_4xx_given_up_and_reported_once(tmp_path):
    waits: list[float] = []
    failures = []
    made = [n for n in map(notices.from_entry, entries(tmp_path)) if n][:3]
    with receiver("pagerduty") as pd:
        pd.fail_next = [500, 503, 429]
        notifier = Notifier([Target("pagerduty", pd.url, KEY)], sleep=waits.append, backoff_s=0.5,
                            on_failure=lambda t, n, why: failures.append((t.name, n.key, why)))
        notifier.notify(made[0])
        assert notifier.flush(10)
        assert waits == [0.5, 1.0, 1.0] and notifier.sent["pagerduty"] == 1  # backoff, then Retry-After: 1
        bad = Notifier([Target("pagerduty", pd.url, "short-key")], sleep=waits.append,
                       on_failure=lambda t, n, why: failures.append((t.name, n.key, why)))
        for n in made:
            bad.notify(n)
        assert bad.flush(10)
        assert bad.failed["pagerduty"] == 3 and bad.retries["pagerduty"] == 0  # 400: no retry
        assert failures == [("pagerduty", "approval_request:ap-1", "HTTP 400")]  # reported once
        notifier.close()
        bad.close()


def test_a_receiver_that_is_down_is_retried_then_given_up(tmp_path):
    waits: list[float] = []
    made = [n for n in map(notices.from_entry, entries(tmp_path)) if n][0]
    notifier = Notifier([Target("slack", "http://127.0.0.1:1/hook")], sleep=waits.append, max_attempts=3)
    notifier.notify(made)
    assert notifier.flush(10)
    assert notifier.failed["slack"] == 1 and len(waits) == 2
    notifier.close()


def test_the_queue_is_bounded_and_drops_the_oldest(tmp_path):
    made = [n for n in map(notices.from_entry, entries(tmp_path)) if n][0]
    gate = threading.Event()

    def slow(url, body, headers):
        gate.wait(5)
        return 200, {}

    notifier = Notifier([Target("slack", "http://127.0.0.1:1/hook")], post=slow, max_queue=3)
    for _ in range(10):
        notifier.notify(made)
    gate.set()
    assert notifier.flush(10)
    assert notifier.dropped["slack"] >= 6 and notifier.sent["slack"] + notifier.dropped["slack"] == 10
    notifier.close()


def test_settings_choose_targets_and_notices():
    targets = from_settings("http://127.0.0.1/s", KEY, "http://127.0.0.1/pd", None, None, {"slack": "halt"})
    assert [(t.kind, sorted(t.notices)) for t in targets] == [
        ("slack", ["halt"]), ("pagerduty", ["access_request", "approval_request", "halt"])]
    with pytest.raises(ValueError, match="unknown notice kinds"):
        parse_notices("halt,bogus")


def test_long_texts_are_cut_to_the_services_limits():
    huge = notices.Notice("halt", "halt:" + "x" * 400, AgentRef("a" * 300), "t" * 500, "y" * 5000, "critical",
                          1.0, path="/agents/" + "a" * 300)
    with receiver("slack") as slack, receiver("pagerduty") as pd:
        notifier = Notifier([Target("slack", slack.url), Target("pagerduty", pd.url, KEY)],
                            console_url="http://127.0.0.1:4318")
        notifier.notify(huge)
        assert notifier.flush(10)
        notifier.close()
        assert slack.problems == [] and pd.problems == [] and len(pd.received) == 1
