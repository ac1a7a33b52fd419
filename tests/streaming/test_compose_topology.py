"""The processes docker-compose.yml starts, started here without Docker: its gateway and two workers, with
the commands and environment the compose file gives them (only the broker's address, the ports and the
state directories are this machine's), Tansu standing in for Kafka. An agent's runaway is halted end to end;
a worker killed with SIGKILL hands its partitions to the other, with the agents' ladders and leases intact.

Not here: the image itself (Docker cannot run on these machines; `tests/test_packaging.py` builds what it
installs) and a broker restart with its data (Tansu runs on memory storage here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from aiokafka.partitioner import DefaultPartitioner

from spanwarden.collector.otlp_encode import to_request
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess, free_port
from tests.detectors.traffic import T0, merged, normal, runaway
from tests.streaming.kafka_io import assigned_records_partitions

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _service(name: str) -> tuple[list[str], dict[str, str]]:
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]
    return list(service["command"]), {k: str(v) for k, v in service["environment"].items()}


def _post_spans(url: str, records: list[Any]) -> None:
    for start in range(0, len(records), 200):
        body = to_request(records[start:start + 200]).SerializeToString()
        answer = requests.post(f"{url}/v1/traces", data=body, timeout=30,
                               headers={"Content-Type": "application/x-protobuf"})
        assert answer.status_code == 200, answer.text


def _until(check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return check()


def test_the_compose_topology_halts_an_agent_and_survives_a_killed_worker(tmp_path: Path) -> None:
    with LocalBroker(log_dir=tmp_path) as broker:  # no topics made beforehand: the gateway makes compose's
        _run(broker, tmp_path)


def _run(broker: LocalBroker, tmp_path: Path) -> None:
    here = {"SPANWARDEN_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SPANWARDEN_TRUST_SPAN_TIME": "1"}  # the spans below carry simulated times: judged by them
    command, env = _service("spanwarden")
    port = free_port()
    command[command.index("--port") + 1], command[command.index("--host") + 1] = str(port), "127.0.0.1"
    gateway_env = {**os.environ, **env, **here, "SPANWARDEN_STATE_DIR": str(tmp_path / "gateway")}
    with open(tmp_path / "gateway.log", "wb") as log:
        gateway = subprocess.Popen([sys.executable, "-m", "spanwarden.cli", *command], env=gateway_env,
                                   stdout=log, stderr=subprocess.STDOUT)
    workers = []
    url = f"http://127.0.0.1:{port}"
    try:
        for name in ("worker-1", "worker-2"):
            worker_command, worker_env = _service(name)
            assert worker_command == ["worker"]
            workers.append(WorkerProcess(broker.bootstrap, tmp_path / f"{name}.log",
                                         int(worker_env["SPANWARDEN_KAFKA_PARTITIONS"]),
                                         worker_env["SPANWARDEN_KAFKA_APP_ID"], extra_env=here).start())
        assert _until(lambda: _healthy(url), 30), (tmp_path / "gateway.log").read_text()[-2000:]
        token = (tmp_path / "gateway" / "admin.token").read_text().strip()

        lease = requests.post(f"{url}/v1/leases", timeout=30, json={"agent": "agent-b", "reservation": "r1"})
        assert lease.status_code == 200, lease.text
        _post_spans(url, merged(normal(3, 2), runaway(T0 + 2 * 3600, 60)))
        halted = _until(lambda: _decision(url, "agent-a").get("action") == "halt", 60)
        assert halted, _decision(url, "agent-a")
        before = _decision(url, "agent-a")

        partitions = list(range(int(env["SPANWARDEN_KAFKA_PARTITIONS"])))
        home = DefaultPartitioner()(b"agent-a", partitions, partitions)  # where its records and state are
        holder = next(w for w in workers if home in assigned_records_partitions(w.log_path))
        holder.kill()  # SIGKILL: the other worker takes its partitions over from the changelog
        for agent in ("agent-a", "agent-b"):  # asked again with the same reservation until it is served again
            _until(lambda who=agent: requests.post(f"{url}/v1/leases", timeout=60, json={
                "agent": who, "reservation": "probe"}).status_code == 200, 60)
        resumed = requests.post(f"{url}/v1/commands", headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                json={"command": "resume", "agent": "agent-a", "reason": "loop fixed"})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["version"] > before["version"]  # the ladder came over with its history
        again = requests.post(f"{url}/v1/leases", timeout=60, json={"agent": "agent-b", "reservation": "r1"})
        assert again.json() == lease.json()  # the lease book came over too: the same lease, not a second
    finally:
        for worker in workers:
            worker.stop()
        gateway.terminate()
        gateway.wait(30)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _decision(url: str, agent: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/v1/decisions/{agent}", timeout=10)
    return dict(answer.json()) if answer.status_code == 200 else {}
