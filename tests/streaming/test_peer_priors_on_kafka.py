"""Peer priors on the Kafka runtime, on the real broker with two worker processes: the workers publish
their warmed-up agents' pooled spend, and a new agent of the team runs away on whichever worker holds it:
it is judged on its peers' spend (a `cost_spike_vs_peers` finding) before it has a baseline of its own."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from spanwarden.collector.otlp_encode import to_request
from spanwarden.detectors.peer_prior import FLEET
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.topics import FINDINGS, PEER_PRIORS
from tests.detectors.traffic import T0, normal, runaway
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import produce_spans, read_topic

pytestmark = pytest.mark.slow
PEERS = [f"peer-{c}" for c in "abcd"]


def _fleet_peers(messages: list[ConsumerRecord]) -> int:
    newest = {m.key: orjson.loads(m.value) for m in messages if m.value}
    return sum(p["peers"] for p in newest.values() if p["group"] == FLEET)


def _vs_peers(messages: list[ConsumerRecord]) -> list[dict[str, object]]:
    docs = [orjson.loads(m.value) for m in messages if m.value]
    return [d for d in docs if d.get("kind") == "cost_spike_vs_peers"]


def test_a_new_agent_is_judged_on_the_peers_other_workers_hold(broker: LocalBroker, tmp_path: Path) -> None:
    env = {"SPANWARDEN_TRUST_SPAN_TIME": "1", "SPANWARDEN_WORKER_PRIORS_PUBLISH_S": "1"}
    workers = [WorkerProcess(broker.bootstrap, tmp_path / f"w{i}.log", PARTITIONS, extra_env=env).start()
               for i in range(2)]
    try:
        history = [(p, to_request(normal(n, 2.5, agent=p)[i:i + 300]).SerializeToString())
                   for n, p in enumerate(PEERS) for i in range(0, len(normal(n, 2.5, agent=p)), 300)]
        produce_spans(broker.bootstrap, history)
        published = read_topic(broker.bootstrap, PEER_PRIORS, lambda m: _fleet_peers(m) >= len(PEERS), 60)
        assert _fleet_peers(published) >= len(PEERS)  # every peer warmed up and counted, on both workers
        produce_spans(broker.bootstrap, [("newcomer", to_request(runaway(T0 + 3 * 3600, 30, agent="newcomer"))
                                          .SerializeToString())])
        found = _vs_peers(read_topic(broker.bootstrap, FINDINGS, lambda m: bool(_vs_peers(m)), 60))
    finally:
        for worker in workers:
            worker.stop()
    assert found and {f["agent_id"] for f in found} == {"newcomer"}
