"""The console is a client of the service's own HTTP API: each read and each action is a request to the
same `/v1/...` routes the CLI uses, sent over loopback to the socket the browser's request came in on, with
the signed-in person's token. Authorisation, auditing (with the person's name), the durability refusals and
the Kafka runtime's routing to workers therefore apply to the console exactly as to the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

TIMEOUT_S = 60.0  # a command through Kafka waits for a worker (kafka_command_timeout_s) before a 504


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message") or f"HTTP {self.status}")


class ApiClient:
    """A client session per call: nothing to close when the app stops (loopback connections are cheap)."""

    @staticmethod
    def base_url(request: web.Request) -> str:
        """The socket this request arrived on (never its Host header, which the browser chooses)."""
        assert request.transport is not None
        host, port = request.transport.get_extra_info("sockname")[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if request.secure else 'http'}://{host}:{port}"

    async def call(self, request: web.Request, token: str, method: str, path: str,
                   params: dict[str, str] | None = None, json: dict[str, Any] | None = None) -> ApiAnswer:
        # ssl=False: the peer is this very process's listening socket, reached over loopback.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as client, \
                client.request(method, self.base_url(request) + path, params=params, json=json,
                               headers={"Authorization": f"Bearer {token}"}, ssl=False) as answer:
            try:
                body = await answer.json(content_type=None)
            except ValueError:
                body = {"message": (await answer.text())[:200]}
            return ApiAnswer(answer.status, body if isinstance(body, dict) else {"items": body})
