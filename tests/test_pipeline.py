"""The shared pipeline: records through detectors and ladders to decisions, audited; peer priors for new
agents; unknown agents are never enforced on."""

from __future__ import annotations

from spanwarden.audit_sink import MemoryAuditSink
from spanwarden.collector.span_record import make_record
from spanwarden.enforcers.decision import Action
from spanwarden.enforcers.policy import Policy
from spanwarden.pipeline import Pipeline

from .detectors import traffic
from .detectors.traffic import T0


def team_records(agent: str, hours: float, seed: int):
    return [r._replace(agent_id=agent, team="support", environment="prod")
            for r in traffic.normal(seed, hours, agent=agent)]


def runaway(agent: str, start: float, seconds: float):
    return [r._replace(team="support", environment="prod") for r in traffic.runaway(start, seconds, agent=agent)]


def test_a_new_agent_is_judged_on_its_peers_until_it_has_its_own_baseline():
    pipeline = Pipeline(Policy.load(), MemoryAuditSink())
    peers = traffic.merged(*(team_records(f"peer-{i}", 3, seed=i) for i in range(4)))
    pipeline.process(peers)
    start = T0 + 3 * 3600
    decisions = pipeline.process(runaway("newcomer", start, 30))
    halts = [d for d in decisions if d.agent_id == "newcomer" and d.action is Action.HALT]
    assert halts and halts[0].issued_s - start < 20
    assert "peers" in halts[0].reason


def test_without_peers_a_new_agent_has_only_the_budget_ceiling():
    pipeline = Pipeline(Policy.load(), MemoryAuditSink())
    decisions = pipeline.process(runaway("loner", T0, 30))  # $22 in 30 s: far from the $100/hour ceiling
    assert [d for d in decisions if d.action is not Action.ALLOW] == []


def test_unknown_agents_are_audited_but_never_enforced():
    sink = MemoryAuditSink()
    pipeline = Pipeline(Policy.load(), sink)
    spend = [make_record(agent_id="unknown", span_id=f"{i:016x}", end_ns=int((T0 + i) * 1e9), cost_usd=5.0)
             for i in range(40)]
    assert pipeline.process(spend) == []
    assert any(e.kind == "finding" and e.agent.id == "unknown" for e in sink.entries)


def test_every_finding_and_decision_is_audited_with_the_agent_and_actor():
    sink = MemoryAuditSink()
    pipeline = Pipeline(Policy.load(), sink)
    pipeline.process(traffic.merged(team_records("a", 3, 1), runaway("a", T0 + 3 * 3600, 20)))
    decisions = [e for e in sink.entries if e.kind == "decision"]
    assert decisions and all(e.agent.team == "support" and e.actor.startswith("policy:") for e in decisions)
    assert all(e.prev_hash == p.hash for p, e in zip(sink.entries, sink.entries[1:], strict=False))


def test_team_budget_throttles_the_agents_spending_while_the_team_is_over():
    shipped = Policy.load().model_dump(mode="json")
    policy = Policy.model_validate({**shipped, "budgets": {**shipped["budgets"], "team_usd_per_hour": 5.0}})
    pipeline = Pipeline(policy, MemoryAuditSink())
    spend = [make_record(agent_id=f"agent-{i % 3}", team="finance", environment="prod", span_id=f"{i:016x}",
                         end_ns=int((T0 + i * 2) * 1e9), cost_usd=0.1) for i in range(80)]  # $8 in 160 s
    decisions = pipeline.process(spend)
    throttled = sorted({d.agent_id for d in decisions if d.action is Action.THROTTLE})
    assert throttled == ["agent-0", "agent-1", "agent-2"]
    assert all("team finance spent" in d.reason for d in decisions if d.action is Action.THROTTLE)
    restored = Pipeline(policy, MemoryAuditSink())
    restored.load_state(pipeline.to_state())
    assert restored.team_budgets.to_state() == pipeline.team_budgets.to_state()
