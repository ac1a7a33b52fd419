"""Auditors' questions: export a range, and explain the decision in force with who was responsible."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from spanwarden.enforcers.audit_log import AuditLog
from spanwarden.enforcers.audit_query import AuditReadError, entries, explain, export
from spanwarden.enforcers.decision import Action
from spanwarden.enforcers.policy import Policy
from spanwarden.pipeline import Pipeline

from ..detectors import traffic
from ..detectors.traffic import T0


@pytest.fixture
def state_dir(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    pipeline = Pipeline(Policy.load(), log)
    normal = [r._replace(owner="alice@example.com", team="support", environment="prod", agent_source="service")
              for r in traffic.normal(1, 3)]
    runaway = [r._replace(owner="alice@example.com", team="support", environment="prod", agent_source="service")
               for r in traffic.runaway(T0 + 3 * 3600, 20)]
    pipeline.process(traffic.merged(normal, runaway))
    pipeline.command("agent-a", Action.ALLOW, "checked with the owner: a bad deploy, rolled back", "bob",
                     T0 + 4 * 3600)
    log.close()
    return tmp_path


def test_explain_names_the_rule_the_evidence_and_the_owner(state_dir):
    halted_at = T0 + 3 * 3600 + 30
    result = explain(state_dir / "audit.jsonl", "agent-a", at=halted_at).to_dict()
    assert result["decision"]["action"] == "halt"
    assert result["decision"]["decided_by"].startswith("policy:cost-runaway@")
    assert result["who"] == {"owner": "alice@example.com", "team": "support", "environment": "prod",
                             "version": ""}
    assert result["because_of"] and all(f["evidence"] for f in result["because_of"])
    assert all(f["actor"] == "detector:cost_velocity" for f in result["because_of"])
    assert result["identity"] == {"source": "service", "from": "the resource's service.name"}
    later = explain(state_dir / "audit.jsonl", "agent-a").to_dict()
    assert later["decision"]["action"] == "allow" and later["decision"]["decided_by"] == "human:bob"
    assert [c["actor"] for c in later["human_commands"]] == ["human:bob"]


def test_export_filters_and_formats(state_dir):
    path = state_dir / "audit.jsonl"
    everything = list(entries(path))
    window = list(entries(path, since=T0 + 3 * 3600, until=T0 + 3 * 3600 + 60, agent="agent-a"))
    assert 0 < len(window) < len(everything)
    assert all(T0 + 3 * 3600 <= e.time_s <= T0 + 3 * 3600 + 60 for e in window)
    rows = list(csv.DictReader(io.StringIO(export(window, "csv"))))
    assert [int(r["seq"]) for r in rows] == [e.seq for e in window] and rows[0]["owner"] == "alice@example.com"
    assert [json.loads(line)["seq"] for line in export(window, "jsonl").splitlines()] == [e.seq for e in window]


def test_unreadable_lines_are_reported_not_skipped(state_dir):
    path = state_dir / "audit.jsonl"
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(AuditReadError, match="audit verify"):
        list(entries(path))


def test_cli_explain_and_export(state_dir):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "spanwarden.cli", "audit", *args, "--state-dir",
                               str(state_dir)], capture_output=True, text=True, timeout=60)

    shown = cli("explain", "agent-a", "--at", str(T0 + 3 * 3600 + 30))
    assert shown.returncode == 0 and "halt" in shown.stdout and "alice@example.com" in shown.stdout
    assert "identity:    from the resource's service.name (service)" in shown.stdout
    exported = cli("export", "--format", "csv", "--since", "2027-01-15T08:00:00")
    assert exported.returncode == 0 and exported.stdout.startswith("seq,")
    assert cli("export", "--since", "yesterday-ish").returncode == 2


def test_explain_shows_scoped_decisions_in_force_at_the_moment(tmp_path):
    from spanwarden.enforcers.audit_log import AgentRef, AuditLog

    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    agent = AgentRef("agent-s", "alice", "t", "prod")
    log.append("decision", agent, "human:omar", "bad purges", 100.0, data={
        "action": "halt", "scope": "tool:purge_*", "decided_by": "human:omar", "version": 1})
    log.append("decision", agent, "policy:access-requests@v1", "waits for a human", 110.0, data={
        "action": "require_approval", "scope": "resource:db:pg:hr.salaries", "version": 2})
    log.append("decision", agent, "human:omar", "fixed", 200.0, data={
        "action": "allow", "scope": "tool:purge_*", "version": 3})
    log.close()
    at_150 = explain(tmp_path / "audit.jsonl", "agent-s", at=150.0).to_dict()
    assert [(d["action"], d["scope"]) for d in at_150["scoped_in_force"]] == [
        ("halt", "tool:purge_*"), ("require_approval", "resource:db:pg:hr.salaries")]
    at_250 = explain(tmp_path / "audit.jsonl", "agent-s", at=250.0).to_dict()
    assert [d["scope"] for d in at_250["scoped_in_force"]] == ["resource:db:pg:hr.salaries"]
