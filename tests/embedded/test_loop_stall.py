"""Nothing holds the event loop: with 5,000 agents in the service, the spans they send, snapshots of all of
them, the clock, status, profile and kill commands leave the loop free within 100 ms — measured by the
service's own loop probe as CPU time its thread spent between two 10 ms wakes, so a busy shared machine
does not make it fail. The mutation check: put the snapshot back on the loop (the whole state as one JSON
document, as before) and the probe catches it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spanwarden.bench.soak import AgentTraffic
from spanwarden.collector.otlp_encode import to_request
from spanwarden.embedded import state_store
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

pytestmark = pytest.mark.slow
AGENTS = 5000
# Issue 17's bound. The holds past it were full GC passes (100-250 ms at 5,000 agents; now none while serving,
# spanwarden/process_tuning.py): 33 ms seen on a loaded 2-core machine. The mutation, the snapshot
# back on the loop, holds 2.3-4.3 s.
HELD_LIMIT_S = 0.1
HEADERS = {"Content-Type": "application/x-protobuf"}
ADMIN = {"Authorization": "Bearer t"}


def _started(tmp_path: Path) -> tuple[EmbeddedService, str]:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", snapshot_interval_s=0.5))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


def _feed(url: str, traffic: list[AgentTraffic], per_agent: int, agents_per_request: int = 100) -> None:
    session = requests.Session()
    for start in range(0, len(traffic), agents_per_request):
        records = [r for agent in traffic[start:start + agents_per_request] for r in agent.batch(per_agent)]
        answer = session.post(f"{url}/v1/traces", data=to_request(records).SerializeToString(), headers=HEADERS,
                              timeout=60)
        assert answer.status_code == 200, answer.text


def _exercise(service: EmbeddedService, url: str, traffic: list[AgentTraffic]) -> None:
    """Spans from every agent again while snapshots run, with the reads and commands an operator makes."""
    snapshots = service.snapshots.written
    _feed(url, traffic, 2)
    for _ in range(3):
        assert requests.get(f"{url}/v1/status", headers=ADMIN, timeout=60).status_code == 200
        assert requests.get(f"{url}/v1/profile/{traffic[7].agent}", headers=ADMIN, timeout=60).status_code == 200
        assert requests.post(f"{url}/v1/commands", headers=ADMIN, timeout=60, json={
            "command": "kill", "agent": traffic[3].agent, "reason": "test"}).status_code == 200
        assert requests.get(f"{url}/metrics/agents", headers=ADMIN, timeout=60).status_code == 200
    deadline = time.monotonic() + 60
    while service.snapshots.written < snapshots + AGENTS and time.monotonic() < deadline:
        time.sleep(0.2)  # at least one snapshot of every agent ran during the measurement
    assert service.snapshots.written >= snapshots + AGENTS


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[EmbeddedService, str, list[AgentTraffic]]]:
    service, url = _started(tmp_path)
    traffic = [AgentTraffic(f"agent-{i:05d}", 0) for i in range(AGENTS)]
    try:
        _feed(url, traffic, 3)
        assert service.call(lambda: len(service.pipeline.detectors)) == AGENTS
        service.call(service.loop_probe.reset)  # the fleet's first spans are warm-up
        yield service, url, traffic
    finally:
        service.stop()


def test_no_step_holds_the_loop_at_5000_agents(fleet: tuple[EmbeddedService, str, list[AgentTraffic]]) -> None:
    service, url, traffic = fleet
    _exercise(service, url, traffic)
    assert service.loop_probe.samples > 100
    print(f"longest loop hold {service.loop_probe.max_held_s * 1000:.1f} ms, "
          f"longest lateness {service.loop_probe.max_stall_s * 1000:.1f} ms")
    assert service.loop_probe.max_held_s < HELD_LIMIT_S, (
        f"something held the event loop for {service.loop_probe.max_held_s * 1000:.0f} ms")


def test_the_probe_catches_a_snapshot_put_back_on_the_loop(
        fleet: tuple[EmbeddedService, str, list[AgentTraffic]], monkeypatch: pytest.MonkeyPatch) -> None:
    service, url, traffic = fleet

    async def on_the_loop(self: state_store.Snapshotter) -> None:  # the snapshot as it was: all of it, at once
        with open(Path(service.settings.state_dir) / "state.json", "w") as handle:
            json.dump(self.pipeline.to_state(), handle)
        self.written += len(self.pipeline.detectors)

    monkeypatch.setattr(state_store.Snapshotter, "run", on_the_loop)
    _exercise(service, url, traffic)
    print(f"with the snapshot on the loop: longest loop hold {service.loop_probe.max_held_s * 1000:.1f} ms")
    assert service.loop_probe.max_held_s > HELD_LIMIT_S


