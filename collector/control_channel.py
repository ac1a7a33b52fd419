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


MAX_HELD_POLLS = 10_000  # held long-polls in all
MAX_HELD_PER_AGENT = 16  # ... and for any one agent name


class TooManyPolls(RuntimeError):
    """More long-polls are held than the board allows (429 with Retry-After; the watcher backs off)."""


class DecisionBoard:
    """Current decision per agent, with waiters woken on change. Used from one event loop.

    Bounded: a long-poll may name any agent, so at most `max_held` polls are held at once (and
    `max_held_per_agent` for one name), and a name's wake-up event is dropped with its last waiter."""

    def __init__(self, max_held: int = MAX_HELD_POLLS, max_held_per_agent: int = MAX_HELD_PER_AGENT) -> None:
        self._decisions: dict[str, Decision] = {}
        self._scoped: dict[str, dict[str, Decision]] = {}
        self._versions: dict[str, int] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._held: dict[str, int] = {}  # polls held per agent name
        self.held = 0
        self.max_held, self.max_held_per_agent = max_held, max_held_per_agent
        self.refused_polls = 0
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
            if self.held >= self.max_held or self._held.get(agent_id, 0) >= self.max_held_per_agent:
                self.refused_polls += 1
                raise TooManyPolls(f"{self.held:,} long-polls are held; retry shortly")
            event = self._changed.setdefault(agent_id, asyncio.Event())
            self.held += 1
            self._held[agent_id] = self._held.get(agent_id, 0) + 1
            try:
                async with asyncio.timeout(remaining):  # no task of its own: the change wakes this one at once
                    await event.wait()
            except TimeoutError:
                return self.get(agent_id)
            finally:
                self._release(agent_id, event)

    def _release(self, agent_id: str, event: asyncio.Event) -> None:
        self.held -= 1
        left = self._held.pop(agent_id) - 1
        if left:
            self._held[agent_id] = left
        elif self._changed.get(agent_id) is event:
            del self._changed[agent_id]  # no one waits on this name any more


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
            try:
                await board.wait_newer(agent_id, after, wait)
            except TooManyPolls as exc:
                return web.json_response({"code": 429, "message": str(exc)}, status=429,
                                         headers={"Retry-After": "1"})
        return web.json_response(board.view(agent_id))

    async def every(request: web.Request) -> web.Response:
        return web.json_response({"decisions": [d.to_dict() for d in board.all()]})

    return one, every
