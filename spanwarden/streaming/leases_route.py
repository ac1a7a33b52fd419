"""`POST /v1/leases` on `serve --kafka`: the same request and answer as the embedded service
(`embedded/leases_api.py`), granted by the worker that holds the agent (`streaming/shard_leases.py`): the
gateway sends a lease command on the commands topic, keyed by agent, and answers with what the worker
replies on the decisions topic.

`reservation` (optional) names the request: asked again with the same one — a guard retrying after a lost
answer — the worker answers with the same lease instead of granting a second. 429 when the worker's lease
book is full; 504 when no worker answered in time (the lease it may grant later lapses unused)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.embedded.agent_auth import acting_agent
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


def add_routes(app: web.Application, gateway: LeaseGateway, timeout_s: float) -> None:
    async def grant(request: web.Request) -> web.Response:
        try:
            body: dict[str, Any] = await request.json()
            claimed = str(body["agent"])
            returning, unused = str(body.get("returning", "")), float(body.get("unused_usd", 0.0))
            reservation = str(body.get("reservation", ""))
            if not math.isfinite(unused):
                raise ValueError("unused_usd must be a finite number")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with agent ({exc})"}, status=400)
        agent = acting_agent(request, gateway.ingest, claimed)
        if isinstance(agent, web.Response):
            return agent
        command_id = command_id_for(agent, reservation) if reservation else uuid.uuid4().hex
        answer = await ask_worker(gateway, agent, {
            "id": command_id, "type": "lease", "returning": returning, "unused_usd": unused,
            "now_s": gateway.clock()}, timeout_s)
        if answer is None:
            return web.json_response({"code": 504, "message": f"no worker answered the lease request within "
                                      f"{timeout_s:g} s (is a worker running for this agent's partition?)"},
                                     status=504)
        if "refused" in answer:
            return web.json_response({"code": 429, "message": str(answer["refused"])}, status=429,
                                     headers={"Retry-After": str(answer.get("retry_after_s", 60))})
        return web.json_response(answer)

    app.router.add_post("/v1/leases", grant)
