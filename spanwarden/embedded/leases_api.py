"""`POST /v1/leases` `{agent, returning, unused_usd}` → `{id, usd, expires_s}`: an agent's next spend allowance
out of its hourly budget (see `enforcers/leases.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from spanwarden.enforcers.leases import LeaseBook
from spanwarden.pipeline import Pipeline


def add_routes(app: web.Application, pipeline: Pipeline, book: LeaseBook,
               clock: Callable[[], float] = time.time) -> None:
    async def grant(request: web.Request) -> web.Response:
        try:
            body: dict[str, Any] = await request.json()
            agent = str(body["agent"])
            returning, unused = str(body.get("returning", "")), float(body.get("unused_usd", 0.0))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with agent ({exc})"}, status=400)
        bank = pipeline.detectors.get(agent)
        spent = bank.cost.hour.sum if bank is not None else 0.0
        lease = book.grant(agent, clock(), pipeline.policy.budgets.agent_usd_per_hour, spent, returning, unused)
        return web.json_response(lease.to_dict())

    app.router.add_post("/v1/leases", grant)
