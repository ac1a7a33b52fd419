"""The demo summary's false actions are the service's own decisions against normal agents: a person's
kill of a normal agent (from the console or the CLI) is audited as theirs and is no false alarm."""

from __future__ import annotations

from pathlib import Path

from spanwarden.demo.fleet import Fleet, build_fleet
from spanwarden.demo.runner import START, summarise
from spanwarden.enforcers.audit_log import AgentRef, AuditLog
from spanwarden.enforcers.decision import Action
from spanwarden.enforcers.policy import Policy
from spanwarden.pipeline import Pipeline


def test_a_humans_kill_of_a_normal_agent_is_not_a_false_action(tmp_path: Path) -> None:
    fleet = Fleet(build_fleet(7, 6, 3600).agents[:3])  # no incidents: every agent is normal
    a, b = fleet.agents[0].agent_id, fleet.agents[1].agent_id
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    pipeline = Pipeline(Policy.load(), log)
    pipeline.command(a, Action.HALT, "from the console", "human:demo-oncall", START + 60)
    log.append("decision", AgentRef(id=b), "policy:runaway_cost@v1", "spend 9x its baseline", START + 90, (),
               "v1", {"action": "halt", "issued_s": START + 90, "decided_by": "policy:runaway_cost@v1"})
    log.close()
    summary = summarise(fleet, [], tmp_path / "audit.jsonl")
    assert summary["false_actions"] == [{"agent": b, "action": "halt"}]
