"""The fleet's behaviour model on the Kafka runtime, on the real broker with two worker processes and the
gateway: the workers send their agents' normal minutes, the gateway fits the model on the whole fleet's and
publishes it, both workers put the same version in force, and a warmed-up agent's unusual minute is then
judged by it (an `unusual_minute` finding, which no worker makes without the fleet's model)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from spanwarden.collector.otlp_encode import to_request
from spanwarden.pipeline import REFIT_MIN_VECTORS
from spanwarden.streaming.fleet_model import decode_model
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.topics import BEHAVIOUR_MODEL, BEHAVIOUR_VECTORS, FINDINGS
from tests.detectors.traffic import T0, error_storm, normal
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import assigned_records_partitions, produce_spans, read_topic
from tests.streaming.test_gateway_end_to_end import running_gateway

pytestmark = pytest.mark.slow
AGENTS = [f"fleet-{c}" for c in "abcdef"]
HOURS = 2.0  # an hour of warm-up, then about 60 normal minutes an agent: 360 for the fleet


def _unusual(messages: list[ConsumerRecord]) -> list[dict[str, object]]:
    docs = [orjson.loads(m.value) for m in messages if m.value]
    return [d for d in docs if d.get("kind") == "unusual_minute"]


def _in_force(log_path: Path) -> list[str]:
    return [line.split("behaviour model ", 1)[1].split()[0]
            for line in log_path.read_text(errors="replace").splitlines() if "in force (fitted on" in line]


def test_the_gateway_fits_the_fleets_model_and_both_workers_put_the_same_version_in_force(
        broker: LocalBroker, tmp_path: Path) -> None:
    env = {"SPANWARDEN_TRUST_SPAN_TIME": "1"}
    workers = [WorkerProcess(broker.bootstrap, tmp_path / f"w{i}.log", PARTITIONS, extra_env=env).start()
               for i in range(2)]
    gateway = running_gateway(broker, tmp_path)
    next(gateway)
    try:
        held = [assigned_records_partitions(w.log_path) for w in workers]
        assert all(held), held  # both workers hold partitions, so both send vectors
        history = []
        for n, agent in enumerate(AGENTS):
            records = normal(n, HOURS, agent=agent)
            history += [(agent, to_request(records[i:i + 300]).SerializeToString())
                        for i in range(0, len(records), 300)]
        produce_spans(broker.bootstrap, history)
        models = read_topic(broker.bootstrap, BEHAVIOUR_MODEL, lambda m: any(x.value for x in m), 120)
        assert models, "no behaviour model was published"
        version, vectors, _ = decode_model(models[-1].value)
        assert vectors >= REFIT_MIN_VECTORS
        sent = read_topic(broker.bootstrap, BEHAVIOUR_VECTORS, lambda m: len(m) >= 2, 10)
        assert len(sent) >= 2  # more than one worker's (or flush's) vectors went into it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(version in _in_force(w.log_path) for w in workers):
            time.sleep(0.2)
        assert [_in_force(w.log_path) for w in workers] == [[version], [version]]

        end = T0 + HOURS * 3600
        storm = error_storm(end + 60, 60, agent=AGENTS[0]) + normal(9, 0.05, start=end + 180, agent=AGENTS[0])
        produce_spans(broker.bootstrap, [(AGENTS[0], to_request(storm).SerializeToString())])
        found = _unusual(read_topic(broker.bootstrap, FINDINGS, lambda m: bool(_unusual(m)), 60))
    finally:
        for worker in workers:
            worker.stop()
        next(gateway, None)
    assert found and {f["agent_id"] for f in found} == {AGENTS[0]}
