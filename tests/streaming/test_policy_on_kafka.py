"""Policy reload on the Kafka runtime: a policy put on the compacted policy topic is put in force by every
worker (whichever holds an agent answers under the same version, and says which), a worker started later
takes it before its first input, and an invalid policy is refused before it reaches the topic, with the
line at fault."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from spanwarden.enforcers.policy import Policy, PolicyError
from spanwarden.streaming import policy_topic
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import ask_for_leases, assigned_records_partitions

AGENTS = [f"agent-{c}" for c in "abcdefgh"]


def _policy_text(version: str, usd_per_hour: float) -> str:
    shipped = Policy.load().model_dump(mode="json")
    return yaml.safe_dump({**shipped, "version": version,
                           "budgets": {**shipped["budgets"], "agent_usd_per_hour": usd_per_hour}})


def _publish(bootstrap: str, text: str, actor: str) -> Policy:
    async def run() -> Policy:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            return await policy_topic.publish(producer, text, actor)
        finally:
            await producer.stop()

    return asyncio.run(run())


def test_an_invalid_policy_is_refused_with_its_line_and_never_published() -> None:
    bad = _policy_text("v-bad", 1.0).replace("throttle_per_s: 0.5", "throttle_per_s: -3")
    with pytest.raises(PolicyError, match=r"line \d+: throttle_per_s"):
        asyncio.run(policy_topic.publish(None, bad, "omar"))  # type: ignore[arg-type]  # refused before sending


def test_a_message_that_is_not_a_policy_is_skipped_and_the_policy_stays() -> None:
    applied: list[str] = []
    current = Policy.load()
    follow = policy_topic.PolicyFollower(lambda: current, lambda p, actor: applied.append(p.version))
    follow(policy_topic.KEY, b'{"yaml": "rules: 3", "actor": "x"}')
    follow(policy_topic.KEY, policy_topic.encode(_policy_text("v9", 2.0), "omar"))
    follow(policy_topic.KEY, policy_topic.encode(yaml.safe_dump(current.model_dump(mode="json")), "omar"))
    assert (applied, follow.refused) == (["v9"], 1)


@pytest.mark.slow
def test_every_worker_puts_the_published_policy_in_force(broker: LocalBroker, tmp_path: Path) -> None:
    own = tmp_path / "policy.yaml"
    own.write_text(_policy_text("v1", 1.0))
    env = {"SPANWARDEN_POLICY_FILE": str(own)}  # each worker's own file: $1/h
    workers = [WorkerProcess(broker.bootstrap, tmp_path / f"w{i}.log", PARTITIONS, extra_env=env).start()
               for i in range(2)]
    try:
        before = ask_for_leases(broker.bootstrap, AGENTS, "before")
        assert {a["reply"]["usd"] for a in before.values()} == {1.0}
        assert all(assigned_records_partitions(w.log_path) for w in workers), "one worker held nothing"
        _publish(broker.bootstrap, _policy_text("v2", 2.0), "omar")
        deadline, answers = time.monotonic() + 30, {}
        while time.monotonic() < deadline:  # each worker follows the topic on its own: ask until both have it
            answers = ask_for_leases(broker.bootstrap, AGENTS, f"after-{time.monotonic()}")
            if {a["policy_version"] for a in answers.values()} == {"v2"}:
                break
        assert {a["policy_version"] for a in answers.values()} == {"v2"}
        unleased = ask_for_leases(broker.bootstrap, [f"other-{a}" for a in AGENTS], "unleased")
        assert {(a["policy_version"], a["reply"]["usd"]) for a in unleased.values()} == {("v2", 2.0)}

        workers[0].kill()
        workers[0] = WorkerProcess(broker.bootstrap, tmp_path / "w2.log", PARTITIONS, extra_env=env).start()
        fresh = ask_for_leases(broker.bootstrap, [f"new-{a}" for a in AGENTS], "fresh", timeout_s=60)
        assert {(a["policy_version"], a["reply"]["usd"]) for a in fresh.values()} == {("v2", 2.0)}
    finally:
        for worker in workers:
            worker.stop()
