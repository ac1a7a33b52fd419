"""Spend leases on the Kafka runtime, on the real broker with real worker processes: 50 concurrent calls
from two guard processes overspend the hourly budget by at most one call's actual cost; the live leases
survive a worker killed with SIGKILL and a rebalance; one reservation is granted once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from spanwarden.collector.pricing import PriceTable
from spanwarden.streaming.gateway import KafkaGateway
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.collector.test_spend_lease import budget_policy
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import assigned_records_partitions
from tests.streaming.test_gateway_end_to_end import running_gateway

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return budget_policy(tmp_path, 1.0)  # type: ignore[no-any-return]


@pytest.fixture
def gateway(broker: LocalBroker, tmp_path: Path, policy: Path) -> Iterator[tuple[str, KafkaGateway]]:
    yield from running_gateway(broker, tmp_path, policy_file=policy)


def _worker(broker: LocalBroker, tmp_path: Path, name: str, policy: Path) -> WorkerProcess:
    return WorkerProcess(broker.bootstrap, tmp_path / f"{name}.log", PARTITIONS,
                         extra_env={"SPANWARDEN_POLICY_FILE": str(policy)}).start()


def _lease(url: str, agent: str, reservation: str, timeout_s: float = 60.0, **more: Any) -> dict[str, Any]:
    """Ask for a lease, asking again with the same reservation while no worker answers (a rebalance)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = requests.post(f"{url}/v1/leases", timeout=30,
                               json={"agent": agent, "reservation": reservation, **more})
        if answer.status_code != 504 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            return dict(answer.json())


def test_fifty_concurrent_calls_from_two_guard_processes_overspend_by_at_most_one_call(
        broker: LocalBroker, gateway: tuple[str, KafkaGateway], tmp_path: Path, policy: Path) -> None:
    url, _ = gateway
    worker = _worker(broker, tmp_path, "worker", policy)
    try:
        spenders = [subprocess.Popen([sys.executable, "-m", "tests.streaming.lease_spender", url, "spender", "25"],
                                     cwd=ROOT, stdout=subprocess.PIPE) for _ in range(2)]
        results = []
        for spender in spenders:
            out, _ = spender.communicate(timeout=240)
            assert spender.returncode == 0
            results.append(orjson.loads(out.splitlines()[-1]))
    finally:
        worker.stop()
    cost = PriceTable.load().cost("gpt-4o", 1_000, 10_000, 0)[0]  # what each call really costs: about $0.10
    spent = [usd for r in results for usd in r["spent"]]
    assert len(spent) + sum(r["refused"] for r in results) == 50
    assert sum(spent) <= 1.0 + cost, results
    assert len(spent) >= int(1.0 / cost), results  # every call the budget could afford went out


def test_live_leases_survive_a_kill_and_a_rebalance_and_a_reservation_is_granted_once(
        broker: LocalBroker, gateway: tuple[str, KafkaGateway], tmp_path: Path, policy: Path) -> None:
    url, _ = gateway
    agents = [f"agent-{c}" for c in "abcdef"]  # spread over the partitions: some stay, some move
    first = _worker(broker, tmp_path, "first", policy)
    second: WorkerProcess | None = None
    try:
        granted = {agent: _lease(url, agent, "r1") for agent in agents}
        assert {g["usd"] for g in granted.values()} == {1.0}
        assert _lease(url, "agent-a", "r1") == granted["agent-a"]  # asked again: the same lease, not a second

        second = _worker(broker, tmp_path, "second", policy)  # a rebalance: partitions move to it
        assert {_lease(url, agent, "r2")["usd"] for agent in agents} == {0.0}  # the first leases still hold
        assert assigned_records_partitions(first.log_path), "the first worker held no partition to lose"
        first.kill()  # SIGKILL, right after its last grants: no clean shutdown, no final commit

        after = {agent: _lease(url, agent, "r3") for agent in agents}
        assert {a["usd"] for a in after.values()} == {0.0}, after
        assert {agent: _lease(url, agent, "r1") for agent in agents} == granted  # no grant twice, still
        # A lease handed back with $0.25 unused: $0.75 of it is held as spent, the rest can be granted again.
        back = _lease(url, "agent-b", "r4", returning=granted["agent-b"]["id"], unused_usd=0.25)
        assert back["usd"] == 0.25
    finally:
        first.stop()
        if second is not None:
            second.stop()
