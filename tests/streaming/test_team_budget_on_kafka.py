"""A team budget on the Kafka runtime, on the real broker with two worker processes: the team's agents are
spread over both workers, the team stage adds up their spend wherever it is, and when the team is over
its budget every agent of it that spends is throttled, whichever worker holds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka.structs import ConsumerRecord

from spanwarden.collector.otlp_encode import to_request
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.topics import DECISIONS
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import assigned_records_partitions, produce_spans, read_topic
from tests.streaming.test_team_stage import T0, calls

pytestmark = pytest.mark.slow
AGENTS = [f"agent-{c}" for c in "abcdefgh"]


def _throttled(messages: list[ConsumerRecord]) -> dict[str, dict[str, Any]]:
    out = {}
    for message in messages:
        decision = orjson.loads(message.value or b"{}").get("decision", {})
        if decision.get("action") == "throttle":
            out[decision["agent_id"]] = decision
    return out


def test_a_team_over_its_budget_is_throttled_on_every_worker(broker: LocalBroker, tmp_path: Path) -> None:
    shipped = Policy.load().model_dump(mode="json")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({**shipped, "version": "teams-1",
                                      "budgets": {**shipped["budgets"], "team_usd_per_hour": 1.0}}))
    env = {"SPANWARDEN_POLICY_FILE": str(policy), "SPANWARDEN_TRUST_SPAN_TIME": "1"}
    workers = [WorkerProcess(broker.bootstrap, tmp_path / f"w{i}.log", PARTITIONS, extra_env=env).start()
               for i in range(2)]
    try:
        held = [assigned_records_partitions(w.log_path) for w in workers]
        # Each agent spends $0.10 a minute: $0.80 for the team, under its $1/h; then twice more, over it.
        first = produce_spans(broker.bootstrap, [(a, to_request(calls(a, 1, T0)).SerializeToString())
                                                 for a in AGENTS])
        assert not _throttled(read_topic(broker.bootstrap, DECISIONS, lambda m: False, timeout_s=5))
        # Minute 1 takes the team over $1 (which agents' records come last depends on the workers' timing);
        # once it is over, every agent spends again, so each is throttled on its next spend, wherever it is.
        # (An agent that never spends after the crossing is not throttled: the finding goes to the spender.)
        produce_spans(broker.bootstrap, [(a, to_request(calls(a, 1, T0 + 60)).SerializeToString())
                                         for a in AGENTS])
        assert _throttled(read_topic(broker.bootstrap, DECISIONS, lambda m: bool(_throttled(m)), timeout_s=60))
        produce_spans(broker.bootstrap, [(a, to_request(calls(a, 1, T0 + 120)).SerializeToString())
                                         for a in AGENTS])
        throttled = _throttled(read_topic(broker.bootstrap, DECISIONS,
                                          lambda m: set(_throttled(m)) == set(AGENTS), timeout_s=60))
    finally:
        for worker in workers:
            worker.stop()
    assert set(throttled) == set(AGENTS)
    assert {d["decided_by"] for d in throttled.values()} == {"policy:team-budget@teams-1"}
    places = {m.partition for m in first}  # spans keyed by agent: the partition of its records and state
    assert all(places & h for h in held), (places, held)  # the team's agents were on both workers
