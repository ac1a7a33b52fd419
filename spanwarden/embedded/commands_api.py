"""On-call commands over HTTP (`POST /v1/commands`): kill, throttle and resume an agent, authenticated
with the service's bearer token and audited with the human who gave them."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from aiohttp import web

from spanwarden.enforcers.decision import Action
from spanwarden.pipeline import Pipeline

COMMANDS = {"kill": Action.HALT, "throttle": Action.THROTTLE, "resume": Action.ALLOW, "warn": Action.WARN}


def add_routes(app: web.Application, pipeline: Pipeline, token: str,
               clock: Callable[[], float] = time.time) -> None:
    async def command(request: web.Request) -> web.Response:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not supplied or not hmac.compare_digest(supplied.encode(), token.encode()):
            return web.json_response({"code": 401, "message": "a valid bearer token is required"}, status=401)
        try:
            body = await request.json()
            name, agent, actor = body["command"], body["agent"], body["actor"]
            reason = body.get("reason", "")
            rate = None if body.get("rate_per_s") is None else float(body["rate_per_s"])
            expires = None if body.get("expires_s") is None else float(body["expires_s"])
            if rate is not None and not rate > 0:
                raise ValueError("rate_per_s must be > 0")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with command, agent and actor, "
                                      f"numeric rate_per_s/expires_s ({exc})"}, status=400)
        if name not in COMMANDS:
            return web.json_response({"code": 400, "message": f"unknown command {name!r}; one of "
                                      f"{sorted(COMMANDS)}"}, status=400)
        if name == "kill" and not str(reason).strip():
            return web.json_response({"code": 400, "message": "kill needs a reason"}, status=400)
        action = COMMANDS[name]
        if action is Action.THROTTLE and rate is None:
            rate = pipeline.policy.throttle_per_s
        decision = pipeline.command(str(agent), action, str(reason) or f"{name} by {actor}", str(actor), clock(),
                                    expires, rate if action is Action.THROTTLE else None)
        return web.json_response(decision.to_dict())

    app.router.add_post("/v1/commands", command)
