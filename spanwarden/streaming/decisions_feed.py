"""The decisions topic read into the control channel's board: what agents poll in the Kafka runtime.
Read from the beginning on start (the topic is compacted: each agent's newest view), then followed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from spanwarden.collector.control_channel import DecisionBoard
from spanwarden.enforcers.decision import Decision
from spanwarden.streaming.topic_follower import follow
from spanwarden.streaming.topics import DECISIONS

log = logging.getLogger(__name__)


class DecisionsFeed:
    def __init__(self, board: DecisionBoard) -> None:
        self.board = board
        self.applied = 0
        self.malformed = 0
        self._waiters: dict[str, asyncio.Future[Decision]] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def apply(self, value: bytes) -> None:
        """Publish one decisions message (newest versions win; replays and old versions are no-ops)."""
        try:
            doc: dict[str, Any] = orjson.loads(value)
            decision = Decision.from_dict(doc["decision"])
            views = [Decision.from_dict(doc["current"]), *(Decision.from_dict(d) for d in doc["scoped"]), decision]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.malformed += 1
            log.error("skipped a malformed decisions message: %s", exc)
            return
        for view in sorted(views, key=lambda d: d.version):
            self.board.publish(view)
        self.applied += 1
        waiter = self._waiters.pop(str(doc.get("command_id")), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(decision)
        reply = self._replies.pop(str(doc.get("command_id")), None)
        if reply is not None and not reply.done() and isinstance(doc.get("reply"), dict):
            reply.set_result(doc["reply"])

    def expect(self, command_id: str) -> asyncio.Future[Decision]:
        """A future resolved with the decision a command makes, once a worker has applied it."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiters[command_id] = future
        return future

    def expect_reply(self, command_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future resolved with the answer a worker gives a request that is not a command (a lease), sent
        with the agent's current views on the same topic: compaction keeps each agent's newest whole view."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        self._waiters.pop(command_id, None)
        self._replies.pop(command_id, None)

    async def run(self, bootstrap: str, stopping: asyncio.Event, fetch_max_wait_ms: int = 100) -> None:
        await follow(bootstrap, DECISIONS, lambda key, value: self.apply(value), stopping, fetch_max_wait_ms)
