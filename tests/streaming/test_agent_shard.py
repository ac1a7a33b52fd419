"""The worker's pure core: per-agent state in a mapping (the Faust table in production), replays skipped,
restarts and evictions invisible in the results."""

from __future__ import annotations

import orjson

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.agent_shard import AgentShard, ShardOutput
from spanwarden.streaming.record_batch import SourceRecords
from spanwarden.streaming.span_splitter import SpansMessage, SpanSplitter
from tests.detectors.traffic import T0, merged, normal, runaway
from tests.streaming.same_state import assert_same_state


def _stream() -> list[SpansMessage]:
    """Two agents' traffic as spans-topic messages of 50 spans, one agent running away near the end."""
    records = merged(normal(1, 3, agent="agent-a"), normal(2, 3, agent="agent-b"),
                     runaway(T0 + 2.5 * 3600, 60, agent="agent-a"))
    return [SpansMessage(0, i, to_request(records[s:s + 50]).SerializeToString())
            for i, s in enumerate(range(0, len(records), 50))]


def _sources(messages: list[SpansMessage]) -> dict[str, list[SourceRecords]]:
    return SpanSplitter(Normalizer(PriceTable.load())).split(messages)


def _run(shard: AgentShard, by_agent: dict[str, list[SourceRecords]], chunk: int = 7) -> list[ShardOutput]:
    """Feed each agent's sources in chunks, as rounds of `take_events` would, keeping every output."""
    outputs = []
    for agent_id, sources in by_agent.items():
        for start in range(0, len(sources), chunk):
            outputs.append(shard.process(agent_id, sources[start:start + chunk]))
    return outputs


def _audit(outputs: list[ShardOutput]) -> list[tuple[str, str, str]]:
    return [(e.data["idempotence_key"], e.kind, e.reason) for o in outputs for e in o.audit]


def test_the_runaway_agent_is_halted_and_every_entry_has_a_unique_key() -> None:
    outputs = _run(AgentShard(Policy.load(None), {}), _sources(_stream()))
    halts = [m for o in outputs for m in o.decisions if m["decision"]["action"] == "halt"]
    assert [m["decision"]["agent_id"] for m in halts] == ["agent-a"]
    keys = [k for k, _, _ in _audit(outputs)]
    assert len(keys) == len(set(keys)) > 0


def test_a_replayed_batch_is_skipped_and_makes_no_second_output() -> None:
    by_agent = _sources(_stream())
    shard = AgentShard(Policy.load(None), {})
    first = _run(shard, by_agent)
    again = _run(shard, by_agent)
    assert all(not o.audit and not o.decisions and not o.findings for o in again)
    assert sum(o.skipped_records for o in again) == sum(len(s.records) for v in by_agent.values() for s in v)
    assert _audit(first)


def test_a_new_shard_on_the_saved_states_continues_exactly_like_one_that_never_stopped() -> None:
    by_agent = _sources(_stream())
    reference = _run(AgentShard(Policy.load(None), {}), by_agent)
    states: dict[str, bytes] = {}
    before = AgentShard(Policy.load(None), states)
    half = {a: s[: len(s) // 2] for a, s in by_agent.items()}
    outputs = _run(before, half)
    for out in outputs:
        states[out.agent_id] = out.state  # what the worker writes to the table
    after = AgentShard(Policy.load(None), states)  # a restarted worker: nothing in memory
    outputs += _run(after, by_agent)  # the whole stream again: the first half must be skipped
    assert _audit(outputs) == _audit(reference)
    for agent_id in by_agent:
        assert_same_state(orjson.loads(after.state_bytes(agent_id)),
                          orjson.loads(next(o.state for o in reversed(reference) if o.agent_id == agent_id)))


def test_evicting_agents_from_memory_changes_nothing() -> None:
    by_agent = _sources(_stream())
    reference = _run(AgentShard(Policy.load(None), {}), by_agent)
    states: dict[str, bytes] = {}
    tiny = AgentShard(Policy.load(None), states, max_in_memory=1)
    outputs = []
    for start in range(0, max(len(s) for s in by_agent.values()), 5):  # each load evicts the other agent
        for agent_id, sources in by_agent.items():
            out = tiny.process(agent_id, sources[start:start + 5])
            states[agent_id] = out.state
            outputs.append(out)
    assert len(tiny._recent) == 1
    assert sorted(_audit(outputs)) == sorted(_audit(reference))


def test_an_unreadable_state_is_reported_and_the_agent_starts_over() -> None:
    shard = AgentShard(Policy.load(None), {"agent-a": b"{not json"})
    sources = _sources(_stream())["agent-a"][:2]
    out = shard.process("agent-a", sources)
    assert shard.corrupt_states == 1
    assert orjson.loads(out.state)["positions"] == {"0": [sources[-1].offset, sources[-1].part]}


def test_a_command_applies_once_per_id_and_names_the_human() -> None:
    shard = AgentShard(Policy.load(None), {})
    command = {"id": "c1", "action": "halt", "reason": "runaway spend", "actor": "omar", "now_s": T0,
               "selected_by": {"agent": "agent-a"}}
    out = shard.command("agent-a", command)
    assert out.decisions[0]["decision"]["action"] == "halt"
    assert out.decisions[0]["command_id"] == "c1"
    assert [(e.kind, e.actor) for e in out.audit] == [("command", "human:omar"), ("decision", "human:omar")]
    assert not shard.command("agent-a", command).decisions


def test_records_filed_under_another_agent_are_dropped() -> None:
    shard = AgentShard(Policy.load(None), {})
    stray = SourceRecords(0, 1, 0, [SpanRecord(*_sources(_stream())["agent-b"][0].records[0])])
    shard.process("agent-a", [stray])
    assert "agent-b" not in shard.pipeline.detectors
