"""Leases on the worker's pure core: granted out of the agent's budget, saved with the agent's state (a new
owner holds the same live leases and learned call sizes), and one command — one reservation — grants once."""

from __future__ import annotations

from pathlib import Path

import yaml

from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.record_batch import SourceRecords
from tests.detectors.traffic import normal


def budget(tmp_path: Path, usd_per_hour: float) -> Policy:
    shipped = Policy.load().model_dump(mode="json")
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({**shipped, "budgets": {**shipped["budgets"],
                                                          "agent_usd_per_hour": usd_per_hour}}))
    return Policy.load(path)


def lease(shard: AgentShard, states: dict[str, bytes], command_id: str, now_s: float = 1000.0,
          **more: object) -> dict[str, object]:
    out = shard.command("agent-a", {"id": command_id, "type": "lease", "now_s": now_s, **more})
    [message] = out.decisions
    assert message["command_id"] == command_id and message["decision"]["agent_id"] == "agent-a"
    states["agent-a"] = out.state  # what the worker writes to the table
    return dict(message["reply"])


def test_a_new_owner_holds_the_live_leases_and_grants_nothing_twice(tmp_path: Path) -> None:
    policy, states = budget(tmp_path, 1.0), dict[str, bytes]()
    first = AgentShard(policy, states)
    granted = lease(first, states, "c1")
    assert granted["usd"] == 1.0 and str(granted["id"]).startswith("lease-")
    assert lease(first, states, "c2")["usd"] == 0.0  # the first lease holds the whole budget

    second = AgentShard(policy, states)  # another worker, reading the same table
    assert lease(second, states, "c3")["usd"] == 0.0
    assert lease(second, states, "c1") == granted  # the same command (a replay, a retry) gets the same lease
    assert second.leases.answered_again == 1
    # The lease comes back with $0.40 unused: $0.60 spent stays held until the spans count it.
    assert lease(second, states, "c4", returning=granted["id"], unused_usd=0.4)["usd"] == 0.4


def test_a_replay_on_an_owner_that_lost_the_state_grants_the_same_lease(tmp_path: Path) -> None:
    policy = budget(tmp_path, 1.0)
    before = lease(AgentShard(policy, {}), {}, "c1")
    assert lease(AgentShard(policy, {}), {}, "c1") == before  # ids come from the command, not from chance


def test_leases_expire_and_sizes_travel_with_the_state(tmp_path: Path) -> None:
    policy, states = budget(tmp_path, 1.0), dict[str, bytes]()
    shard = AgentShard(policy, states)
    records = [r._replace(model="gpt-4o", input_tokens=900, output_tokens=300, cost_usd=0.0)
               for r in normal(3, 0.5)][:40]
    states["agent-a"] = shard.process("agent-a", [SourceRecords(0, 1, 0, records)]).state
    held = lease(shard, states, "c1")
    assert held["p99_input_tokens"] and held["p99_output_tokens"]
    moved = AgentShard(policy, states)
    later = lease(moved, states, "c2", now_s=1000.0 + float(held["ttl_s"]) + 1)  # the first lease has lapsed
    assert later["usd"] == 1.0
    assert (later["p99_input_tokens"], later["p99_output_tokens"]) == (held["p99_input_tokens"],
                                                                     held["p99_output_tokens"])
