"""The Faust agents in-process with `agent.test_context()`: the wiring between topics, the state store and
the pure code, without a broker (the outputs go to in-memory channels)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming import agents
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.keyed_audit import decode_entry
from spanwarden.streaming.record_batch import decode, encode
from spanwarden.streaming.span_splitter import SpansMessage, SpanSplitter
from spanwarden.streaming.tables import MemoryStates
from spanwarden.streaming.topics import Topics
from tests.detectors.traffic import T0, merged, normal, runaway


def _wired() -> tuple[faust.App, Topics, MemoryStates]:
    """The agents wired to in-memory channels (read them through `_reader`) and an in-memory state store."""
    app = faust.App("spanwarden-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False)
    topics = Topics(*(app.channel() for _ in range(9)))
    states = MemoryStates()
    agents.register(app, topics, states, AgentShard(Policy.load(None), states),
                    SpanSplitter(Normalizer(PriceTable.load())))
    return app, topics, states


def _reader(channel: Any) -> Any:
    return channel.__aiter__()  # a channel delivers to its subscribers only: subscribe before sending


async def _drain(channel: Any) -> list[Any]:
    out = []
    while True:
        try:
            out.append(await channel.get(timeout=0.3))
        except TimeoutError:
            return out


def test_split_spans_groups_records_by_agent_with_their_source_positions() -> None:
    async def scenario() -> list[Any]:
        app, topics, _ = _wired()
        records = merged(normal(1, 0.3, agent="agent-a"), normal(2, 0.3, agent="agent-b"))
        records_out = _reader(topics.records)
        async with app.agents["split-spans"].test_context() as split:
            await split.put(to_request(records).SerializeToString(), key=None, partition=2)  # offset 0
            await split.put(b"\x00 not OTLP", key=None, partition=2)
            return await _drain(records_out)

    events = asyncio.run(scenario())
    batches = {e.key.decode(): decode(e.value) for e in events}
    assert sorted(batches) == ["agent-a", "agent-b"]
    for agent, sources in batches.items():
        assert [(s.partition, s.offset) for s in sources] == [(2, 0)]
        assert {r.agent_id for s in sources for r in s.records} == {agent}


def test_detect_turns_record_batches_into_audit_decisions_and_the_saved_state() -> None:
    async def scenario() -> tuple[list[Any], list[Any], MemoryStates]:
        app, topics, states = _wired()
        records = merged(normal(1, 2, agent="agent-a"), runaway(T0 + 1.8 * 3600, 60, agent="agent-a"))
        messages = [SpansMessage(1, i, to_request(records[s:s + 100]).SerializeToString())
                    for i, s in enumerate(range(0, len(records), 100))]
        by_agent = SpanSplitter(Normalizer(PriceTable.load())).split(messages)
        audit_out, decisions_out = _reader(topics.audit), _reader(topics.decisions)
        async with app.agents["detect"].test_context() as detect:
            for source in by_agent["agent-a"]:
                await detect.put(encode([source]), key=b"agent-a", partition=3)
            await detect.put(b"{}", key=b"agent-a", partition=3)  # junk: logged, skipped
            return await _drain(audit_out), await _drain(decisions_out), states

    audit, decisions, states = asyncio.run(scenario())
    assert any(orjson.loads(d.value)["decision"]["action"] == "halt" for d in decisions)
    assert {decode_entry(e.value)["kind"] for e in audit} >= {"finding", "decision"}
    assert states.partitions == {"agent-a": 3}
    assert orjson.loads(states["agent-a"])["pipeline"]["ladder"]["current"]["action"] == "halt"


def test_a_batch_that_breaks_the_pipeline_is_passed_over_and_the_rest_of_its_round_applied() -> None:
    async def scenario() -> MemoryStates:
        app, _, states = _wired()
        good = SpanSplitter(Normalizer(PriceTable.load())).split(
            [SpansMessage(0, 5, to_request(normal(1, 0.2, agent="agent-a")).SerializeToString())])["agent-a"]
        # an earlier offset, so the good batch after it is not skipped; cost_usd as text: the detectors
        # cannot add it up
        first, *rest = good[0].records
        poisoned = encode([good[0]._replace(offset=4, records=[first._replace(cost_usd="a lot"), *rest])])
        async with app.agents["detect"].test_context() as detect:
            await detect.put(poisoned, key=b"agent-a")
            await detect.put(encode(good), key=b"agent-a")
            await asyncio.sleep(0.3)
        return states

    states = asyncio.run(scenario())
    saved = orjson.loads(states["agent-a"])
    assert saved["positions"] == {"0": [5, 0]}
    assert saved["pipeline"]["detectors"] is not None  # the good batch was learned
