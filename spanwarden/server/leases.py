"""`POST /v1/leases` `{agent, returning, unused_usd, reservation}` → `{id, usd, expires_s, ttl_s,
p99_input_tokens, p99_output_tokens}`: an agent's next spend allowance out of its hourly budget (see
`enforcers/leases.py`), with its learned p99 call size (null until known). `unused_usd` is the returned
lease's signed balance (negative: a debt, carried into this grant); `reservation` (optional) names the request
so that asking again grants once (the Kafka runtime). Bound to the agent's token (`auth.acting_agent`); 429
when the lease book is full, 504 when the runtime could not answer in time. The runtime grants
(`Runtime.grant_lease`): in-process, or through the agent's worker."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from spanwarden.server.auth import acting_agent
from spanwarden.server.commands import CommandNotApplied
from spanwarden.server.routes import Handler
from spanwarden.server.runtime import Runtime


class LeaseRefused(Exception):
    """No lease now (the book is full): answered 429 with `Retry-After`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def handler(runtime: Runtime) -> Handler:
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
        agent = acting_agent(request, runtime.ingest, claimed)
        if isinstance(agent, web.Response):
            return agent
        try:
            return web.json_response(await runtime.grant_lease(agent, returning, unused, reservation))
        except LeaseRefused as exc:
            return web.json_response({"code": 429, "message": str(exc)}, status=429,
                                     headers={"Retry-After": str(max(1, int(exc.retry_after_s)))})
        except CommandNotApplied as exc:
            return web.json_response({"code": 504, "message": str(exc)}, status=504)

    return grant
