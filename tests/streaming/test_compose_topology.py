"""The processes docker-compose.yml starts, started here without Docker: its gateway and two workers, from the
INSTALLED WHEEL's `spanwarden` script (built and installed outside the checkout), with the commands and
environment the compose file gives them (only the broker's address, the ports and the state directories are
this machine's), Tansu standing in for Kafka with its topics kept on disk (through a loopback S3 endpoint).

An agent's runaway is halted end to end; a worker killed with SIGKILL hands its partitions to the other, with
the agents' ladders and leases intact; then the broker itself is killed with SIGKILL and started again on its
data while the gateway and the worker run: both say in one line that it is back and carry on by themselves,
and nothing acknowledged is lost — a fresh gateway and a fresh worker (no local state) started afterwards
read back from the broker the same decisions and leases, and the audit chain holds every entry once.

Not here: the image itself (Docker cannot run on these machines; `tests/test_packaging.py` builds what it
installs) and the wheel's dependencies as the index resolves them (`.ci/package_smoke.sh` does that)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from aiokafka.partitioner import DefaultPartitioner

from spanwarden.collector.otlp_encode import to_request
from spanwarden.enforcers.audit_log import AuditEntry, read_entries, verify
from spanwarden.streaming.keyed_audit import KEY_FIELD
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess, free_port
from tests.detectors.traffic import T0, merged, normal, runaway
from tests.streaming.installed_wheel import install_wheel
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


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_compose_topology_halts_an_agent_survives_a_killed_worker_and_a_broker_restart(
        tmp_path: Path, script: Path) -> None:
    # No topics made beforehand: the gateway makes compose's. Topics on disk, so the broker can restart.
    with LocalBroker(log_dir=tmp_path, storage_dir=tmp_path / "broker-data") as broker:
        _run(broker, tmp_path, script)


class _Gateway:
    """compose's `spanwarden` service, from the installed script; restartable on the same port and state."""

    def __init__(self, script: Path, broker: LocalBroker, tmp_path: Path, here: dict[str, str]) -> None:
        command, env = _service("spanwarden")
        self.port = free_port()
        command[command.index("--port") + 1], command[command.index("--host") + 1] = str(self.port), "127.0.0.1"
        self.argv = [str(script), *command]
        self.env = {**os.environ, **env, **here, "SPANWARDEN_STATE_DIR": str(tmp_path / "gateway")}
        self.log_path, self.cwd = tmp_path / "gateway.log", tmp_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> _Gateway:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT)
        assert _until(lambda: _healthy(self.url), 30), self.log_path.read_text()[-2000:]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def _run(broker: LocalBroker, tmp_path: Path, script: Path) -> None:
    here = {"SPANWARDEN_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SPANWARDEN_TRUST_SPAN_TIME": "1"}  # the spans below carry simulated times: judged by them
    gateway = _Gateway(script, broker, tmp_path, here)
    gateway.start()
    workers: list[WorkerProcess] = []
    url = gateway.url

    def worker(name: str, log_name: str) -> WorkerProcess:
        worker_command, worker_env = _service(name)
        assert worker_command == ["worker"]
        return WorkerProcess(broker.bootstrap, tmp_path / f"{log_name}.log",
                             int(worker_env["SPANWARDEN_KAFKA_PARTITIONS"]), worker_env["SPANWARDEN_KAFKA_APP_ID"],
                             extra_env=here, cli=[str(script)], cwd=tmp_path)

    try:
        workers += [worker(name, name).start() for name in ("worker-1", "worker-2")]
        token = (tmp_path / "gateway" / "admin.token").read_text().strip()
        admin = {"Authorization": f"Bearer {token}"}

        lease = requests.post(f"{url}/v1/leases", timeout=30, json={"agent": "agent-b", "reservation": "r1"})
        assert lease.status_code == 200, lease.text
        _post_spans(url, merged(normal(3, 2), runaway(T0 + 2 * 3600, 60)))
        halted = _until(lambda: _decision(url, "agent-a").get("action") == "halt", 60)
        assert halted, _decision(url, "agent-a")
        before = _decision(url, "agent-a")

        partitions = list(range(int(_service("spanwarden")[1]["SPANWARDEN_KAFKA_PARTITIONS"])))
        home = DefaultPartitioner()(b"agent-a", partitions, partitions)  # where its records and state are
        holder = next(w for w in workers if home in assigned_records_partitions(w.log_path))
        survivor = next(w for w in workers if w is not holder)
        holder.kill()  # SIGKILL: the other worker takes its partitions over from the changelog
        for agent in ("agent-a", "agent-b"):  # asked again with the same reservation until it is served again
            _until(lambda who=agent: requests.post(f"{url}/v1/leases", timeout=60, json={
                "agent": who, "reservation": "probe"}).status_code == 200, 60)
        resumed = requests.post(f"{url}/v1/commands", headers=admin, timeout=60,
                                json={"command": "resume", "agent": "agent-a", "reason": "loop fixed"})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["version"] > before["version"]  # the ladder came over with its history
        again = requests.post(f"{url}/v1/leases", timeout=60, json={"agent": "agent-b", "reservation": "r1"})
        assert again.json() == lease.json()  # the lease book came over too: the same lease, not a second

        # The broker killed and started again on its data, the gateway and the surviving worker running.
        broker.crash_and_restart(down_s=2.0)
        for log_path, who in ((gateway.log_path, "gateway"), (survivor.log_path, "worker")):
            assert _until(lambda p=log_path: "is back after" in p.read_text(errors="replace"), 60), who
            lines = [line for line in log_path.read_text(errors="replace").splitlines() if "is back after" in line]
            assert len(lines) == 1 and broker.bootstrap in lines[0], lines  # one line says so
        killed = _until(lambda: _command(url, admin, "kill", "agent-a"), 90)  # through the worker again
        assert killed and killed["version"] > resumed.json()["version"], killed
        assert _until(lambda: _decision(url, "agent-a").get("version") == killed["version"], 30)
        assert _until(lambda: _spans_accepted(url, normal(3, 0.2)), 30)  # and spans are taken again
        renewed = requests.post(f"{url}/v1/leases", timeout=60, json={"agent": "agent-b", "reservation": "r1"})
        assert renewed.json() == lease.json()

        # Nothing acknowledged was lost: a new gateway reads the decisions topic from its start, and a new
        # worker with no local state reads the ladders and lease books back from the changelog.
        audit = tmp_path / "gateway" / "audit.jsonl"
        assert _until(lambda: any(e.kind == "decision" and e.agent.id == "agent-a"
                                  and e.data.get("version") == killed["version"] for e in _entries(audit)), 30)
        gateway.stop()
        survivor.kill()
        workers.append(WorkerProcess(broker.bootstrap, tmp_path / "worker-fresh.log",
                                     len(partitions), _service("worker-1")[1]["SPANWARDEN_KAFKA_APP_ID"],
                                     extra_env={**here, "SPANWARDEN_STATE_DIR": str(tmp_path / "fresh-state")},
                                     cli=[str(script)], cwd=tmp_path).start())
        gateway.start()
        assert _until(lambda: _decision(url, "agent-a").get("version") == killed["version"], 30)
        last = requests.post(f"{url}/v1/leases", timeout=60, json={"agent": "agent-b", "reservation": "r1"})
        assert last.json() == lease.json()
        resumed_again = _command(url, admin, "resume", "agent-a")
        assert resumed_again and resumed_again["version"] == killed["version"] + 1  # the ladder's history too
        entries = _entries(audit)
        assert verify(audit).ok
        keys = [e.data[KEY_FIELD] for e in entries if KEY_FIELD in e.data]
        assert keys and len(keys) == len(set(keys))  # every worker entry once, replays and restarts included
    finally:
        for running in workers:
            running.stop()
        gateway.stop()


def _entries(audit: Path) -> list[AuditEntry]:
    return [e for _, e in read_entries(audit) if isinstance(e, AuditEntry)] if audit.exists() else []


def _command(url: str, admin: dict[str, str], command: str, agent: str) -> dict[str, Any] | None:
    try:
        answer = requests.post(f"{url}/v1/commands", headers=admin, timeout=30,
                               json={"command": command, "agent": agent, "reason": "compose topology test"})
    except requests.RequestException:
        return None
    return dict(answer.json()) if answer.status_code == 200 else None


def _spans_accepted(url: str, records: list[Any]) -> bool:
    body = to_request(records).SerializeToString()
    try:
        return requests.post(f"{url}/v1/traces", data=body, timeout=30,
                             headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    except requests.RequestException:
        return False


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _decision(url: str, agent: str) -> dict[str, Any]:
    try:
        answer = requests.get(f"{url}/v1/decisions/{agent}", timeout=10)
    except requests.RequestException:
        return {}
    return dict(answer.json()) if answer.status_code == 200 else {}
