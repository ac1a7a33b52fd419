"""The Faust agents: they only move messages between topics, the state table and the pure code
(`SpanSplitter`, `AgentShard`). Outputs are delivered before an agent's new state is written, and input
offsets are committed only after both, so a crash replays inputs and the shard's positions skip them."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

import orjson

from spanwarden.dashboards.reporting import DatadogReporting
from spanwarden.enforcers.decision import Decision
from spanwarden.streaming import fleet_priors
from spanwarden.streaming.activity_rollup import FLUSH_S, ActivityRollup
from spanwarden.streaming.agent_shard import AgentShard, ShardOutput
from spanwarden.streaming.keyed_audit import encode_entry
from spanwarden.streaming.record_batch import RecordBatchError, SourceRecords, decode, encode
from spanwarden.streaming.span_splitter import SpansMessage, SpanSplitter, pack
from spanwarden.streaming.tables import StateStore
from spanwarden.streaming.team_stage import TeamStage
from spanwarden.streaming.topics import Topics

log = logging.getLogger(__name__)
TAKE_MAX = 256  # messages per processing round
TAKE_WITHIN_S = 0.02  # longest a message waits for its round (0.05: p50 span->decision ~2x)


def register(app: Any, topics: Topics, states: StateStore, shard: AgentShard, splitter: SpanSplitter,
             reporting: DatadogReporting | None = None, flush_s: float = 10.0,
             teams: tuple[TeamStage, StateStore] | None = None,
             activity: ActivityRollup | None = None,
             priors_every_s: float = fleet_priors.PUBLISH_EVERY_S) -> None:
    """Wire the agents; with `reporting`, what this worker learns and decides also goes to Datadog (each
    worker reports its own agents; counts add up across workers); with `teams`, the team stage and its
    table; with `activity`, rollups of what it learned, for the gateway's journal and per-agent metrics."""
    lock = asyncio.Lock()  # records and commands of one agent must not interleave between apply and save
    home: dict[str, int] = {}  # each agent's partition, for the peer priors this worker publishes

    def report(outputs: list[ShardOutput]) -> None:
        if reporting is None:
            return
        for out in outputs:
            ref = shard.agent_ref(out.agent_id)
            reporting.records(out.applied)
            for finding in out.findings:
                reporting.finding(finding, ref)
            for message in out.decisions:
                if "reply" in message:  # a lease answer: the decision in it is only the current one again
                    continue
                reporting.decision(Decision.from_dict(message["decision"]), ref)

    if reporting is not None:
        @app.timer(interval=flush_s)
        async def flush_datadog() -> None:
            reporting.flush()

    @app.agent(topics.spans, name="split-spans")
    async def split_spans(stream: Any) -> None:
        async for events in stream.take_events(TAKE_MAX, within=TAKE_WITHIN_S):
            by_agent = splitter.split([SpansMessage(e.message.partition, e.message.offset, e.value or b"",
                                                    float(e.message.timestamp or 0.0)) for e in events])
            for agent_id, sources in by_agent.items():
                for chunk in pack(sources):
                    await topics.records.send(key=agent_id.encode(), value=encode(chunk))

    @app.agent(topics.records, name="detect")
    async def detect(stream: Any) -> None:
        async for events in stream.take_events(TAKE_MAX, within=TAKE_WITHIN_S):
            by_agent: dict[str, list[SourceRecords]] = defaultdict(list)
            partitions: dict[str, int] = {}
            for event in events:
                agent_id = _agent_key(event)
                partitions[agent_id] = home[agent_id] = event.message.partition
                try:
                    by_agent[agent_id].extend(decode(event.value or b""))
                except RecordBatchError as exc:
                    log.error("skipped records message %d@%d: %s", event.message.offset,
                              event.message.partition, exc)
            async with lock:
                outputs = [shard.process(agent_id, sources) for agent_id, sources in by_agent.items()]
                await _deliver(topics, states, outputs, partitions)
            report(outputs)
            if activity is not None:
                for out in outputs:
                    activity.add(out.applied)
            skipped = sum(o.skipped_records for o in outputs)
            if skipped:
                log.info("skipped %d records already applied (a replay after a restart or rebalance)", skipped)

    @app.agent(topics.commands, name="apply-commands")
    async def apply_commands(stream: Any) -> None:
        async for event in stream.events():
            agent_id = _agent_key(event)
            try:
                command = orjson.loads(event.value or b"")
                async with lock:
                    outputs = [shard.command(agent_id, command)]
                    await _deliver(topics, states, outputs, {agent_id: event.message.partition})
                report(outputs)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.error("skipped command %d@%d for %r: %s", event.message.offset, event.message.partition,
                          agent_id, exc)

    if teams is not None:
        _register_teams(app, topics, *teams)

    if activity is not None and topics.activity is not None:
        @app.timer(interval=FLUSH_S)
        async def publish_activity() -> None:
            pending = []
            for messages in activity.drain_agents():  # the loop is free between two agents' lines
                pending += [await topics.activity.send(key=agent_id.encode(), value=orjson.dumps(message))
                            for agent_id, message in messages]
                await asyncio.sleep(0)
            if pending:
                await asyncio.gather(*pending)

    @app.timer(interval=priors_every_s)  # this worker's sums for the fleet's peer priors
    async def publish_peer_priors() -> None:
        for agent_id in [a for a in home if a not in shard.pipeline.detectors]:  # bounded by agents in memory
            del home[agent_id]
        sums = fleet_priors.partials(shard.pipeline, home)
        pending = [await topics.peer_priors.send(key=key.encode(), value=orjson.dumps(value))
                   for key, value in sums.items()]
        if pending:
            await asyncio.gather(*pending)

    @app.on_partitions_revoked.connect
    def forget_moved_agents(sender: Any, revoked: Any, **kwargs: Any) -> None:
        shard.forget_all()  # reloaded from the table when their records come back here
        if teams is not None:
            teams[0].forget_all()


def _register_teams(app: Any, topics: Topics, stage: TeamStage, team_states: StateStore) -> None:
    lock = asyncio.Lock()

    @app.agent(topics.team_spend, name="team-budgets")
    async def count_team_spend(stream: Any) -> None:
        async for events in stream.take_events(TAKE_MAX, within=TAKE_WITHIN_S):
            by_team: dict[str, list[SourceRecords]] = defaultdict(list)
            partitions: dict[str, int] = {}
            for event in events:
                team = _agent_key(event)
                partitions[team] = event.message.partition
                try:
                    by_team[team].extend(decode(event.value or b""))
                except RecordBatchError as exc:
                    log.error("skipped team-spend message %d@%d: %s", event.message.offset,
                              event.message.partition, exc)
            async with lock:
                outputs = [stage.process(team, sources) for team, sources in by_team.items()]
                pending = [await topics.commands.send(key=agent.encode(), value=orjson.dumps({**command,
                                                                                             "agent": agent}))
                           for out in outputs for agent, command in out.commands]
                if pending:
                    await asyncio.gather(*pending)  # the findings are on their way before the spend is saved
                for out in outputs:
                    team_states.put(out.team, partitions[out.team], out.state)


def _agent_key(event: Any) -> str:
    key = event.key
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


async def _deliver(topics: Topics, states: StateStore, outputs: list[ShardOutput],
                   partitions: dict[str, int]) -> None:
    """Send every output and wait until the broker has them, then write the agents' new states."""
    pending: list[Awaitable[Any]] = []
    for out in outputs:
        key = out.agent_id.encode()
        for entry in out.audit:
            pending.append(await topics.audit.send(key=key, value=encode_entry(entry)))
        for finding in out.findings:
            pending.append(await topics.findings.send(key=key, value=orjson.dumps(finding.to_dict())))
        for message in out.decisions:
            pending.append(await topics.decisions.send(key=key, value=orjson.dumps(message)))
        if out.identity is not None:
            pending.append(await topics.agents.send(key=key, value=orjson.dumps(out.identity)))
        for team, sources in out.team_spend.items():
            pending.append(await topics.team_spend.send(key=team.encode(), value=encode(sources)))
    if pending:
        await asyncio.gather(*pending)
    for out in outputs:
        states.put(out.agent_id, partitions[out.agent_id], out.state)
