"""`POST /v1/leases` on `serve --kafka` (the route is the server layer's, `server/leases.py`, as for `serve`),
granted by the worker that holds the agent (`streaming/shard_leases.py`): the
gateway sends a lease command on the commands topic, keyed by agent, and answers with what the worker
replies on the decisions topic.

`reservation` (optional) names the request: asked again with the same one — a guard retrying after a lost
answer — the worker answers with the same lease instead of granting a second. 429 when the worker's lease
book is full; 504 when no worker answered in time (the lease it may grant later lapses unused)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.streaming.decisions_feed import DecisionsFeed
from spanwarden.streaming.topics import COMMANDS


class LeaseGateway(Protocol):
    """What the route needs from the gateway."""

    ingest: IngestGate
    feed: DecisionsFeed
    producer: AIOKafkaProducer | None
    clock: Callable[[], float]


def command_id_for(agent_id: str, reservation: str) -> str:
    """One command per (agent, reservation): asking again is applying the same command again."""
    return hashlib.sha256(f"{agent_id}\0{reservation}".encode()).hexdigest()[:32]


async def ask_worker(gateway: LeaseGateway, agent_id: str, command: dict[str, Any],
                     timeout_s: float) -> dict[str, Any] | None:
    """Send `command` to the agent's worker; its reply, or None when none came within `timeout_s`."""
    assert gateway.producer is not None
    command_id = str(command["id"])
    waiting = gateway.feed.expect_reply(command_id)
    try:
        await gateway.producer.send_and_wait(COMMANDS, orjson.dumps({**command, "agent": agent_id}),
                                             key=agent_id.encode())
        return await asyncio.wait_for(waiting, timeout_s)
    except TimeoutError:
        return None
    finally:
        gateway.feed.forget(command_id)


async def ask_for_lease(gateway: LeaseGateway, agent_id: str, returning: str, unused_usd: float,
                        reservation: str, timeout_s: float) -> dict[str, Any] | None:
    """The worker's answer to a lease request — the lease, or `{"refused": why, "retry_after_s": s}` when
    its book is full — or None when no worker answered within `timeout_s`."""
    command_id = command_id_for(agent_id, reservation) if reservation else uuid.uuid4().hex
    return await ask_worker(gateway, agent_id, {
        "id": command_id, "type": "lease", "returning": returning, "unused_usd": unused_usd,
        "now_s": gateway.clock()}, timeout_s)


def no_answer(timeout_s: float) -> str:
    return (f"no worker answered the lease request within {timeout_s:g} s (is a worker running for this "
            "agent's partition?); ask again with the same reservation")
