"""While it serves, the service runs no full GC passes and freezes what lives long
(spanwarden/process_tuning.py), so cyclic garbage that outlives the young collections would never
be freed. This test checks the service makes none: after spans, status, profiles, kill commands and held
long-polls, a full collection of everything (the frozen objects too) finds next to no garbage of the service's
own classes. The mutation check: a cycle kept past the young collections for each request is found."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spanwarden.bench.soak import AgentTraffic
from spanwarden.collector.otlp_encode import to_request
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

AGENTS = 100
ADMIN = {"Authorization": "Bearer t"}
OURS = ("spanwarden", "collector", "detectors", "enforcers", "dashboards", "aiohttp", "asyncio", "multidict",
        "yarl")
ALLOWED = 50  # a handful in flight at the moment of the count (a request being answered)


def _rounds(url: str, traffic: list[AgentTraffic], rounds: int) -> None:
    session = requests.Session()
    for n in range(rounds):
        records = [r for agent in traffic for r in agent.batch(2)]
        assert session.post(f"{url}/v1/traces", data=to_request(records).SerializeToString(), timeout=60,
                            headers={"Content-Type": "application/x-protobuf"}).status_code == 200
        poll = threading.Thread(target=lambda: requests.get(f"{url}/v1/decisions/{traffic[5].agent}",
                                                            params={"after": 10**6, "wait": 0.3}, timeout=30))
        poll.start()
        assert session.get(f"{url}/v1/status", headers=ADMIN, timeout=60).status_code == 200
        assert session.get(f"{url}/v1/profile/{traffic[7].agent}", headers=ADMIN, timeout=60).status_code == 200
        command = {"command": "kill" if n % 2 else "resume", "agent": traffic[3].agent, "reason": "test"}
        assert session.post(f"{url}/v1/commands", headers=ADMIN, timeout=60, json=command).status_code == 200
        assert session.get(f"{url}/v1/decisions", timeout=60).status_code == 200
        poll.join(30)


def _garbage_of_ours() -> list[Any]:
    """A full collection of everything, frozen objects included, keeping what it finds to look at."""
    gc.collect(1)  # what the young collections free while the service serves
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [o for o in gc.garbage if type(o).__module__.split(".")[0] in OURS]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[EmbeddedService, str, list[AgentTraffic]]]:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", snapshot_interval_s=0.2))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    traffic = [AgentTraffic(f"agent-{i:03d}", 0) for i in range(AGENTS)]
    try:
        _rounds(url, traffic, 3)  # warm-up: every agent known, every route's first use behind
        gc.unfreeze()
        gc.collect()
        yield service, url, traffic
    finally:
        service.stop()


def test_serving_makes_no_lasting_cyclic_garbage(
        serving: tuple[EmbeddedService, str, list[AgentTraffic]]) -> None:
    _, url, traffic = serving
    _rounds(url, traffic, 12)
    found = _garbage_of_ours()
    assert len(found) < ALLOWED, sorted({type(o).__qualname__ for o in found})


def test_the_count_finds_a_cycle_kept_for_each_request(
        serving: tuple[EmbeddedService, str, list[AgentTraffic]], monkeypatch: pytest.MonkeyPatch) -> None:
    service, url, traffic = serving
    kept: list[Any] = []
    take = service.take_spans

    async def leaky(message: Any, authorization: str) -> None:
        event = asyncio.Event()
        event.itself = event  # type: ignore[attr-defined]  # a cycle, of a class the count looks at
        kept.append(event)  # it lives past the young collections, then goes: only a full pass frees it
        del kept[:-3]
        await take(message, authorization)

    monkeypatch.setattr(service, "take_spans", leaky)
    _rounds(url, traffic, 12)
    kept.clear()
    found = _garbage_of_ours()
    assert sum(isinstance(o, asyncio.Event) for o in found) >= 6, len(found)
