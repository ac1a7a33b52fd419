"""`spanwarden worker`: the Faust app with its topics, state table and agents, ready to run."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.dashboards.reporting import DatadogReporting, enabled
from spanwarden.enforcers.policy import Policy
from spanwarden.event_time import TimeBounds
from spanwarden.server.listen import bind
from spanwarden.server.state_lock import StateDirLock
from spanwarden.settings import Settings
from spanwarden.streaming import agents, fleet_model, fleet_priors, policy_topic, tables, topics, worker_gc
from spanwarden.streaming.activity_rollup import FLUSH_S, ActivityRollup
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.app import create_app
from spanwarden.streaming.broker_watch import BrokerWatch
from spanwarden.streaming.span_splitter import SpanSplitter
from spanwarden.streaming.team_stage import TeamStage
from spanwarden.streaming.topic_admin import ensure_topics
from spanwarden.streaming.topic_follower import follow
from spanwarden.streaming.topics import BEHAVIOUR_MODEL, PEER_PRIORS, POLICY


@dataclass
class Worker:
    app: Any
    topics: topics.Topics
    table: Any
    shard: AgentShard
    splitter: SpanSplitter


def build(settings: Settings) -> Worker:
    asyncio.run(ensure_topics(settings.kafka_bootstrap, settings.kafka_partitions,
                              settings.kafka_replication_factor))
    policy = Policy.load(settings.policy_file)
    published = policy_topic.read_newest(settings.kafka_bootstrap)
    if published is not None:  # what the gateway put in force wins over this worker's own file
        policy = policy_topic.decode(published)[0]
    prices = PriceTable.load(settings.price_file, (settings.default_input_price, settings.default_output_price))
    app = create_app(settings)
    declared = topics.declare(app, settings.kafka_partitions)
    table = tables.declare(app, settings.kafka_partitions)
    states = tables.AgentStates(table)
    bounds = None if settings.trust_span_time else TimeBounds(settings.max_lateness_s, settings.max_skew_s)
    shard = AgentShard(policy, states, max_in_memory=settings.worker_max_agents_in_memory, time_bounds=bounds)
    fleet = fleet_priors.FleetPriors(shard.pipeline.settings.cost_velocity.windows)
    shard.fleet_prior = fleet.prior  # new agents judged on their peers' spend, wherever the peers are
    splitter = SpanSplitter(Normalizer(prices), settings.max_body_bytes,
                            stamp_received=not settings.trust_span_time)
    reporting = (DatadogReporting(prices.canonical_name, settings.datadog_host, settings.datadog_max_agents,
                                  settings.datadog_queue_batches)
                 if enabled(settings.datadog_export) else None)
    team_states = tables.AgentStates(tables.declare_teams(app, settings.kafka_partitions))
    teams = TeamStage(policy, team_states)
    agents.register(app, declared, states, shard, splitter, reporting, settings.datadog_flush_s,
                    (teams, team_states), activity=ActivityRollup(bounds=bounds),
                    priors_every_s=settings.worker_priors_publish_s)

    def put_in_force(new: Policy, actor: str) -> None:
        shard.set_policy(new, actor, time.time())
        teams.set_policy(new)

    follower = policy_topic.PolicyFollower(lambda: shard.pipeline.policy, put_in_force)

    @app.task
    async def follow_policy() -> None:
        await follow(settings.kafka_bootstrap, POLICY, follower, asyncio.Event(), settings.kafka_fetch_max_wait_ms)

    outbox = fleet_model.VectorOutbox()  # the fleet's behaviour model: normal minutes out, the model back in
    shard.pipeline.on_normal_vectors = outbox
    model_follower = fleet_model.ModelFollower(shard.use_behaviour_model, f"worker {settings.worker_web_port}")

    @app.timer(interval=FLUSH_S)
    async def send_normal_vectors() -> None:
        pending = [await declared.behaviour_vectors.send(value=message) for message in outbox.drain()]
        if pending:
            await asyncio.gather(*pending)

    @app.task
    async def follow_behaviour_model() -> None:
        await follow(settings.kafka_bootstrap, BEHAVIOUR_MODEL, model_follower, asyncio.Event(),
                     settings.kafka_fetch_max_wait_ms)

    @app.timer(interval=worker_gc.FREEZE_EVERY_S)
    async def freeze_long_lived() -> None:  # agents' baselines out of the collector's walk (worker_gc.py)
        worker_gc.freeze_long_lived()

    @app.task
    async def watch_broker() -> None:  # one line when the broker goes away, one when it is back
        await BrokerWatch(settings.kafka_bootstrap, f"worker {settings.worker_web_port}").run(asyncio.Event())

    @app.task
    async def follow_peer_priors() -> None:
        await follow(settings.kafka_bootstrap, PEER_PRIORS, fleet, asyncio.Event(),
                     settings.kafka_fetch_max_wait_ms)

    return Worker(app, declared, table, shard, splitter)


def run(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGINT/SIGTERM (Faust's own worker loop), the collector tuned (`worker_gc.py`)."""
    import faust

    lock = StateDirLock(settings.state_dir).acquire("worker")  # one worker per state dir (Faust's data dir)
    # A busy web port is one line, not Faust's traceback.
    bind("127.0.0.1", settings.worker_web_port, "--web-port / SPANWARDEN_WORKER_WEB_PORT").close()
    worker = build(settings)
    try:
        with worker_gc.tuned():
            faust.Worker(worker.app, loglevel=loglevel).execute_from_commandline()
    finally:
        lock.release()
