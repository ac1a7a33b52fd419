"""`POST /v1/leases` `{agent, returning, unused_usd}` → `{id, usd, expires_s, ttl_s, p99_input_tokens,
p99_output_tokens}`: an agent's next spend allowance out of its hourly budget (see `enforcers/leases.py`),
with its learned p99 call size (null until known). `unused_usd` is the returned lease's signed balance
(negative: a debt, carried into this grant). Bound to the agent's token (`agent_auth.py`); 429 when the
lease book is full."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.embedded.agent_auth import acting_agent
from spanwarden.enforcers.leases import LeaseBook, LeaseBookFull
from spanwarden.pipeline import Pipeline


def add_routes(app: web.Application, pipeline: Pipeline, book: LeaseBook, gate: IngestGate,
               clock: Callable[[], float] = time.time) -> None:
    async def grant(request: web.Request) -> web.Response:
        try:
            body: dict[str, Any] = await request.json()
            claimed = str(body["agent"])
            returning, unused = str(body.get("returning", "")), float(body.get("unused_usd", 0.0))
            if not math.isfinite(unused):
                raise ValueError("unused_usd must be a finite number")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with agent ({exc})"}, status=400)
        agent = acting_agent(request, gate, claimed)
        if isinstance(agent, web.Response):
            return agent
        bank = pipeline.detectors.get(agent)
        spent = bank.cost.hour.sum if bank is not None else 0.0
        try:
            lease = book.grant(agent, clock(), pipeline.policy.budgets.agent_usd_per_hour, spent, returning,
                               unused)
        except LeaseBookFull as exc:
            return web.json_response({"code": 429, "message": f"no lease granted: {exc}"}, status=429,
                                     headers={"Retry-After": str(max(1, int(book.lease_s)))})
        p99 = book.sizes.p99(agent)
        return web.json_response({**lease.to_dict(), "ttl_s": book.lease_s,
                                  "p99_input_tokens": p99[0] if p99 else None,
                                  "p99_output_tokens": p99[1] if p99 else None})

    app.router.add_post("/v1/leases", grant)
