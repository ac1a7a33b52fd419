"""The end-to-end demo: real SDK agents over OTLP/HTTP into the embedded service; every injected incident is
detected and acted on, no normal agent is touched, and the audit log verifies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from spanwarden.demo.runner import DemoConfig, run_demo

KEYS = {"agents", "incidents", "false_actions", "audit_entries", "audit_verified"}
INCIDENT_KEYS = {"agent", "kind", "detected", "action", "seconds_to_action", "usd_after_onset"}


def check(summary: dict, agents: int) -> None:
    assert set(summary) == KEYS and summary["agents"] == agents
    assert sorted(i["kind"] for i in summary["incidents"]) == ["error_storm", "runaway_cost", "unusual_access"]
    for incident in summary["incidents"]:
        assert set(incident) == INCIDENT_KEYS
        assert incident["detected"] and incident["action"] in ("warn", "throttle", "halt"), incident
        assert incident["seconds_to_action"] >= 0
    runaway = next(i for i in summary["incidents"] if i["kind"] == "runaway_cost")
    assert runaway["action"] == "halt" and runaway["seconds_to_action"] < 30 and runaway["usd_after_onset"] < 20
    assert summary["false_actions"] == []
    assert summary["audit_verified"] and summary["audit_entries"] > 0


@pytest.mark.slow
def test_cli_demo_json_contract_and_its_audit_trail_explains_each_incident(tmp_path):
    """What `make demo` runs, with --json: the last line is the contract object; then, for every incident,
    `audit explain` names the policy rule, the evidence and the agent's owner."""
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "spanwarden.cli", *args], capture_output=True, text=True,
                              timeout=600)

    done = cli("demo", "--json", "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    check(summary, 24)
    for incident in summary["incidents"]:
        shown = cli("audit", "explain", incident["agent"], "--json", "--state-dir", str(tmp_path))
        explained = json.loads(shown.stdout)
        assert explained["who"]["owner"].endswith("@example.com")
        if explained["decision"] is not None:  # an agent-wide decision, by a policy rule, on evidence
            assert explained["decision"]["action"] == incident["action"]
            assert explained["decision"]["decided_by"].startswith("policy:")
            assert explained["because_of"] and all(f["evidence"] for f in explained["because_of"])
            continue
        # Or held for some calls only (an access request a human denied): the scope in force, the policy
        # rule that opened it, and the findings behind it with their evidence.
        scoped = [d for d in explained["scoped_in_force"] if d["action"] == incident["action"]]
        assert scoped, explained
        assert any(h["actor"].startswith("policy:") for h in explained["decisions_so_far"])
        assert all(d["because_of"] and all(f["evidence"] for f in d["because_of"]) for d in scoped), scoped


@pytest.mark.slow
@pytest.mark.parametrize("seed", [101])
def test_other_fleets(seed, tmp_path):
    outcome = run_demo(DemoConfig(seed=seed, agents=12, duration_s=2 * 3600, state_dir=tmp_path))
    check(outcome.summary, 12)


@pytest.mark.slow
def test_the_incident_report_of_the_exfiltrating_agent_lists_exactly_what_it_read_after_the_onset(tmp_path):
    from spanwarden.embedded.incident_report import build

    outcome = run_demo(DemoConfig(state_dir=tmp_path))
    incident = next(i for i in outcome.summary["incidents"] if i["kind"] == "unusual_access")
    agent = next(a for a in outcome.agents if a.profile.agent_id == incident["agent"])
    report = build(tmp_path, incident["agent"])
    read_after = {table for t, table in agent.touched if t >= report["onset_s"]}
    assert read_after, "the agent read tables after the onset"
    assert {name.rsplit(":", 1)[-1] for name in report["resources"]} == read_after
    new = {name.rsplit(":", 1)[-1] for name, seen in report["resources"].items() if seen["new"]}
    assert new == read_after - {table for t, table in agent.touched if t < report["onset_s"]}
    assert "crm.customers_pii" in new
