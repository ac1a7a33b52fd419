"""Peer priors on Kafka, the pure parts: each worker's sums of its warmed-up agents' spend histories add up
to the prior one process seeing the whole fleet would pool, a group needs enough peers across workers, and
a new agent on any worker is judged on its peers' spend while it learns its own."""

from __future__ import annotations

import math

import orjson

from spanwarden.detectors.window_totals import WindowTotals
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.fleet_priors import FleetPriors, partials
from spanwarden.streaming.record_batch import SourceRecords
from tests.detectors.traffic import normal


def _worker(agents: list[str], partition: int) -> tuple[AgentShard, dict[str, int]]:
    shard = AgentShard(Policy.load(None), {})
    for n, agent in enumerate(agents):
        records = [r._replace(team="search") for r in normal(n + 10 * partition, 3, agent=agent)]
        shard.process(agent, [SourceRecords(partition, n, 0, records)])
    return shard, {agent: partition for agent in agents}


def test_partials_from_two_workers_add_up_to_the_fleet_prior_once_there_are_enough_peers() -> None:
    (one, one_home), (two, two_home) = _worker(["a-1", "a-2"], 0), _worker(["b-1", "b-2"], 1)
    config = one.pipeline.settings.cost_velocity.windows
    fleet = FleetPriors(config)
    for key, value in partials(one.pipeline, one_home).items():
        fleet(key.encode(), orjson.dumps(value))
    assert fleet.prior("search") is None  # two peers: too few
    for key, value in partials(two.pipeline, two_home).items():
        fleet(key.encode(), orjson.dumps(value))
    shared = fleet.prior("search")
    assert shared is not None
    banks = [*one.pipeline.detectors.values(), *two.pipeline.detectors.values()]
    assert all(b.cost.warmed_up() for b in banks)
    whole = WindowTotals.pooled([b.cost.totals for b in banks], config)  # what one process would pool
    for got, want in zip(shared.windows, whole.windows, strict=True):
        pairs = zip(got.history.to_state()["counts"], want.history.to_state()["counts"], strict=True)
        assert all(math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) for g, w in pairs)
    fleet(b"0|search", b"")  # a tombstone: that partition's agents no longer count
    assert fleet.prior("search") is not None  # the fleet's ("*") partials still count four


def test_a_new_agent_is_judged_on_its_peers_spend_on_any_worker() -> None:
    (one, home) = _worker(["a-1", "a-2", "a-3"], 0)
    fleet = FleetPriors(one.pipeline.settings.cost_velocity.windows)
    for key, value in partials(one.pipeline, home).items():
        fleet(key.encode(), orjson.dumps(value))
    elsewhere = AgentShard(Policy.load(None), {}, fleet_prior=fleet.prior)
    alone = AgentShard(Policy.load(None), {})
    first = [r._replace(team="search") for r in normal(99, 0.05, agent="new")]
    for shard in (elsewhere, alone):
        shard.process("new", [SourceRecords(3, 0, 0, first)])
    assert elsewhere.pipeline.detectors["new"].cost.prior is not None
    assert alone.pipeline.detectors["new"].cost.prior is None
    fleet(b"0|*", b"not json")
    assert fleet.malformed == 1
