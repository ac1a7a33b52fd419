"""The durability rules, alike in both runtimes: on a broken audit chain decisions are still served and what
changes state waits (503) until an admin acknowledges; below the disk floor, 503 and `/healthz` says
disk_full; a background task that dies turns `/healthz` 503 naming it and, when intake depends on it, spans
and commands are refused — never silently."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from spanwarden.enforcers.audit_log import AgentRef, AuditLog, verify
from spanwarden.server.supervisor import Supervisor
from tests.server.conftest import RUNTIMES, start

KILL = {"command": "kill", "agent": "billing-bot", "reason": "runaway"}


def _break_the_chain(state_dir: Path) -> None:
    log = AuditLog(state_dir / "audit.jsonl", fsync="never")
    for i in range(3):
        log.append("service", AgentRef(), "service", f"entry {i}", float(i))
    log.close()
    path = state_dir / "audit.jsonl"
    path.write_text(path.read_text().replace("entry 1", "entry one"))


@pytest.mark.parametrize("kind", RUNTIMES)
def test_a_broken_chain_still_serves_decisions_and_waits_for_an_acknowledgement(kind: str, tmp_path: Path) -> None:
    state = tmp_path / kind
    state.mkdir()
    _break_the_chain(state)
    up, stop = start(kind, state)  # the Kafka gateway starts on a broken chain too
    try:
        health = up.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "audit_broken"
        assert up.get("/v1/decisions/billing-bot").status_code == 200
        assert up.get("/v1/status", up.tokens["viewer"]).status_code == 200
        refused = up.post("/v1/commands", up.tokens["oncall"], json=KILL)
        assert refused.status_code == 503 and "acknowledge" in refused.json()["message"]
        spans = up.post("/v1/traces", up.tokens["billing-bot"], data=b"",
                        headers={"Content-Type": "application/x-protobuf"})
        assert spans.status_code == 503
        assert up.post("/v1/audit/acknowledge", up.tokens["oncall"], json={"reason": "x"}).status_code == 403
        moved = up.post("/v1/audit/acknowledge", up.tokens["admin"], json={"reason": "restored from backup"})
        assert moved.status_code == 200, moved.text
        assert not verify(state / moved.json()["moved_to"]).ok
        assert up.get("/healthz").json()["status"] == "ok"
        assert up.post("/v1/audit/acknowledge", up.tokens["admin"], json={"reason": "again"}).status_code == 409
    finally:
        stop()
    assert verify(state / "audit.jsonl").ok


@pytest.mark.parametrize("kind", RUNTIMES)
def test_below_the_disk_floor_what_changes_state_gets_503(kind: str, tmp_path: Path) -> None:
    up, stop = start(kind, tmp_path / kind, min_free_disk_bytes=1 << 62)
    try:
        health = up.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "disk_full"
        refused = up.post("/v1/commands", up.tokens["oncall"], json=KILL)
        assert refused.status_code == 503 and "bytes free" in refused.json()["message"]
        assert up.get("/v1/decisions/billing-bot").status_code == 200
    finally:
        stop()


def test_a_dead_task_is_named_by_healthz_and_stops_intake_when_intake_needs_it(tmp_path: Path) -> None:
    """The embedded service's own clock task (it judges records and lapses decisions) dies for real."""
    up, stop = start("embedded", tmp_path)
    service = up.runtime
    try:
        assert up.post("/v1/commands", up.tokens["oncall"], json=KILL).status_code == 200

        def broken(now_s: float) -> None:
            raise RuntimeError("the ladder exploded")

        service.pipeline.advance = broken  # the next tick of the clock task raises
        deadline = time.monotonic() + 10
        while up.get("/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        health = up.get("/healthz").json()
        assert health["status"] == "task_dead" and "clock" in health["message"]
        assert health["tasks"]["clock"] == "dead: RuntimeError: the ladder exploded"
        assert health["tasks"]["snapshot"] == "running"
        refused = up.post("/v1/commands", up.tokens["oncall"], json={**KILL, "command": "resume"})
        assert refused.status_code == 503 and "clock" in refused.json()["message"]
        assert up.get("/v1/decisions/billing-bot").json()["action"] == "halt"  # still served
        metrics = up.get("/metrics").text
        assert 'spanwarden_task_up{task="clock"} 0.0' in metrics
        assert 'spanwarden_task_up{task="snapshot"} 1.0' in metrics
    finally:
        stop()


def test_a_task_that_stops_nothing_still_turns_health_503(tmp_path: Path) -> None:
    up, stop = start("embedded", tmp_path)
    service = up.runtime

    async def dies() -> None:
        raise OSError("no route to Datadog")

    try:
        service.call(lambda: service.supervisor.start("datadog_flush", dies, stops_intake=False))
        deadline = time.monotonic() + 5
        while up.get("/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        health = up.get("/healthz")
        assert health.status_code == 503 and "datadog_flush" in health.json()["message"]
        assert up.post("/v1/commands", up.tokens["oncall"], json=KILL).status_code == 200  # intake goes on
    finally:
        stop()


def test_the_supervisor_tells_dead_from_stopped() -> None:
    supervisor, deaths = Supervisor(), []

    async def main() -> None:
        stopping = asyncio.Event()

        async def follows() -> None:
            await stopping.wait()

        async def crashes() -> None:
            raise ValueError("bad message")

        async def returns() -> None:
            return None

        supervisor.start("follower", follows, stops_intake=True)
        supervisor.start("writer", crashes, stops_intake=True, on_death=deaths.append)
        supervisor.start("flush", returns, stops_intake=False)
        await asyncio.sleep(0.05)
        assert supervisor.view() == {"flush": "dead: ended while the service was running", "follower": "running",
                                     "writer": "dead: ValueError: bad message"}
        assert set(supervisor.problems(intake_only=True)) == {"writer"}
        stopping.set()
        await supervisor.stop(grace_s=1)

    asyncio.run(main())
    assert deaths == ["ValueError: bad message"]
    assert supervisor.view()["follower"] == "running"  # ended because the service stopped: not a death
    watched = Supervisor()
    alive = [True]
    watched.watch("notify", lambda: None if alive[0] else "the thread ended", stops_intake=False)
    assert watched.problems() == {}
    alive[0] = False
    assert watched.problems() == {"notify": "the thread ended"}
