"""Both runtimes behind the one server layer, over real HTTP on loopback: `serve` (the embedded service, run
whole) and `serve --kafka` (the gateway's app, served without a broker: what the routes, their roles and the
durability rules do needs none; what needs Kafka is answered 503 and tested on the broker elsewhere)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.roles import Role, add_token
from spanwarden.settings import Settings
from spanwarden.streaming.gateway import KafkaGateway

ADMIN = "server-admin-token"
RUNTIMES = ("embedded", "kafka")


@dataclass
class Running:
    kind: str
    url: str
    runtime: Any
    state_dir: Path
    tokens: dict[str, str]  # role or agent name -> token

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {**_auth(token), **kwargs.pop("headers", {})}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {**_auth(token), **kwargs.pop("headers", {})}
        return requests.post(f"{self.url}{path}", headers=headers, timeout=10, **kwargs)


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def people_and_agents(state_dir: Path) -> dict[str, str]:
    path = state_dir / "tokens.yaml"
    state_dir.mkdir(parents=True, exist_ok=True)
    return {"admin": ADMIN, "viewer": add_token(path, "vera", Role.VIEWER),
            "oncall": add_token(path, "omar", Role.ONCALL),
            "billing-bot": add_token(path, "billing-bot", Role.AGENT, ("billing-bot",)),
            "search-bot": add_token(path, "search-bot", Role.AGENT, ("search-bot",))}


def settings_for(state_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"port": 0, "state_dir": state_dir, "audit_fsync": "never", "admin_token": ADMIN,
                            "tokens_file": state_dir / "tokens.yaml", "ingest_auth": "required", "long_poll_s": 2,
                            "kafka_bootstrap": "127.0.0.1:1"}
    return Settings(**{**base, **overrides})


class _GatewayApp:
    """The gateway's app on its claimed socket, on a loop of its own (no broker, no background tasks)."""

    def __init__(self, gateway: KafkaGateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(15), "the gateway's app did not start"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def setup() -> None:
            self.gateway._loop = asyncio.get_running_loop()
            self.runner = web.AppRunner(self.gateway.build_app(), auto_decompress=False)
            await self.runner.setup()
            await web.SockSite(self.runner, self.gateway.claim.socket).start()

        self.loop.run_until_complete(setup())
        started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)
        self.gateway.audit_log.close()
        self.gateway.claim.release()


def start(kind: str, state_dir: Path, **overrides: Any) -> tuple[Running, Callable[[], None]]:
    """A runtime of `kind` serving on loopback, and how to stop it."""
    tokens = people_and_agents(state_dir)
    settings = settings_for(state_dir, **overrides)
    if kind == "embedded":
        service = EmbeddedService(settings)
        port = service.start_in_thread()
        return Running(kind, f"http://127.0.0.1:{port}", service, state_dir, tokens), service.stop
    gateway = KafkaGateway(settings)
    served = _GatewayApp(gateway)
    return Running(kind, f"http://127.0.0.1:{gateway.claim.port}", gateway, state_dir, tokens), served.stop


@pytest.fixture(params=RUNTIMES)
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    up, stop = start(request.param, tmp_path / request.param)
    try:
        yield up
    finally:
        stop()
