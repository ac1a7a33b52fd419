"""The control channel, service side: the board of current decisions that agents long-poll.

`GET /v1/decisions/{agent}?after=VERSION&wait=SECONDS` answers as soon as the agent's decision is newer
than VERSION, or with the current one when WAIT runs out; `GET /v1/decisions` lists all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from spanwarden.enforcers.decision import Action, Decision, allow

Handler = Callable[[web.Request], Awaitable[web.Response]]


class DecisionBoard:
    """Current decision per agent, with waiters woken on change. Used from one event loop."""

    def __init__(self) -> None:
        self._decisions: dict[str, Decision] = {}
        self._scoped: dict[str, dict[str, Decision]] = {}
        self._versions: dict[str, int] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._closed = False

    def close(self) -> None:
        """Answer every held poll now (the service is stopping)."""
        self._closed = True
        for event in self._changed.values():
            event.set()
        self._changed.clear()

    def publish(self, decision: Decision) -> None:
        agent = decision.agent_id
        if decision.version <= self._versions.get(agent, -1):
            return
        self._versions[agent] = decision.version
        if not decision.scope:
            self._decisions[agent] = decision
        elif decision.action is Action.ALLOW:
            self._scoped.get(agent, {}).pop(decision.scope, None)
        else:
            self._scoped.setdefault(agent, {})[decision.scope] = decision
        event = self._changed.pop(agent, None)
        if event is not None:
            event.set()

    def get(self, agent_id: str) -> Decision:
        return self._decisions.get(agent_id) or allow(agent_id)

    def version(self, agent_id: str) -> int:
        return self._versions.get(agent_id, 0)

    def view(self, agent_id: str) -> dict[str, Any]:
        """What an agent's guard reads: the agent-wide decision, its scoped ones, and the newest version."""
        return {**self.get(agent_id).to_dict(), "board_version": self.version(agent_id),
                "scoped": [d.to_dict() for d in self._scoped.get(agent_id, {}).values()]}

    def all(self) -> list[Decision]:
        return sorted(self._decisions.values(), key=lambda d: d.agent_id)

    async def wait_newer(self, agent_id: str, after_version: int, timeout_s: float) -> Decision:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            current = self.get(agent_id)
            remaining = deadline - loop.time()
            if self.version(agent_id) > after_version or remaining <= 0 or self._closed:
                return current
            event = self._changed.setdefault(agent_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self.get(agent_id)


def add_routes(app: web.Application, board: DecisionBoard, max_wait_s: float) -> None:
    one, every = handlers(board, max_wait_s)
    app.router.add_get("/v1/decisions/{agent}", one)
    app.router.add_get("/v1/decisions", every)


def handlers(board: DecisionBoard, max_wait_s: float) -> tuple[Handler, Handler]:
    """`GET /v1/decisions/{agent}` (long-polled) and `GET /v1/decisions`, for the server layer's route table."""

    async def one(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        try:
            after = int(request.query.get("after", "-1"))
            wait = min(float(request.query.get("wait", "0")), max_wait_s)
        except ValueError:
            return web.json_response({"code": 400, "message": "after must be an integer, wait a number"},
                                     status=400)
        if wait > 0:
            await board.wait_newer(agent_id, after, wait)
        return web.json_response(board.view(agent_id))

    async def every(request: web.Request) -> web.Response:
        return web.json_response({"decisions": [d.to_dict() for d in board.all()]})

    return one, every
