"""Team budgets on Kafka, the pure parts: the detect stage re-keys priced records by team, the team stage
counts each source once (a replay adds nothing; a new owner reading the table goes on from the same
spend), and the finding it sends throttles the spending agent on that agent's worker."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.record_batch import SourceRecords
from spanwarden.streaming.team_stage import TeamStage, team_spend

T0 = 1_800_000_000.0


def team_policy(tmp_path: Path, usd_per_hour: float) -> Policy:
    shipped = Policy.load().model_dump(mode="json")
    path = tmp_path / "policy.yaml"
    budgets = {**shipped["budgets"], "team_usd_per_hour": usd_per_hour}
    path.write_text(yaml.safe_dump({**shipped, "budgets": budgets}))
    return Policy.load(path)


def calls(agent: str, n: int, start_s: float, usd: float = 0.1) -> list[SpanRecord]:
    return [make_record(agent_id=agent, team="search", environment="prod", model="gpt-4o", cost_usd=usd,
                        span_id=hashlib.md5(f"{agent}/{start_s}/{i}".encode()).hexdigest()[:16],
                        trace_id="ab" * 16,
                        start_ns=int((start_s + i) * 1e9), end_ns=int((start_s + i + 0.5) * 1e9))
            for i in range(n)]


def test_the_team_stage_counts_each_source_once_and_its_finding_throttles_the_spender(tmp_path: Path) -> None:
    policy = team_policy(tmp_path, 1.0)
    team_states: dict[str, bytes] = {}
    first = TeamStage(policy, team_states)
    a = SourceRecords(0, 1, 0, calls("agent-a", 6, T0))  # $0.60
    b = SourceRecords(1, 1, 0, calls("agent-b", 3, T0 + 10))  # $0.90 together
    out = first.process("search", [a, b])
    team_states["search"] = out.state
    assert out.commands == []
    assert first.process("search", [a]).commands == [] and first.counted_again == 1  # a replay adds nothing

    second = TeamStage(policy, team_states)  # the team's partition moved: the table has its spend
    over = second.process("search", [SourceRecords(1, 2, 0, calls("agent-b", 2, T0 + 20))])  # $1.10
    [(agent, command)] = over.commands
    assert agent == "agent-b" and command["finding"]["kind"] == "team_budget_exceeded"

    shard = AgentShard(policy, {})  # agent-b's worker
    shard.process("agent-b", [SourceRecords(1, 1, 0, calls("agent-b", 3, T0 + 10))])
    made = shard.command("agent-b", {**command, "agent": "agent-b"})
    [message] = made.decisions
    assert (message["decision"]["action"], message["decision"]["decided_by"]) == (
        "throttle", f"policy:team-budget@{policy.version}")
    assert [f.kind for f in made.findings] == ["team_budget_exceeded"]
    assert shard.command("agent-b", {**command, "agent": "agent-b"}).decisions == []  # a replay decides once


def test_the_detect_stage_sends_only_priced_records_of_a_team_and_only_with_a_team_budget(tmp_path: Path) -> None:
    free = make_record(agent_id="agent-a", team="search", cost_usd=0.0, span_id="f")
    lone = make_record(agent_id="agent-a", team="", cost_usd=0.5, span_id="l")
    priced = calls("agent-a", 2, T0)
    assert team_spend([SourceRecords(0, 5, 0, [free, lone, *priced])]) == {
        "search": [SourceRecords(0, 5, 0, priced)]}
    source = SourceRecords(0, 5, 0, priced)
    assert AgentShard(team_policy(tmp_path, 5.0), {}).process("agent-a", [source]).team_spend == {
        "search": [source]}
    assert AgentShard(Policy.load(None), {}).process("agent-a", [source]).team_spend == {}  # no team budget
