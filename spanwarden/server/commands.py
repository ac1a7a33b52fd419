"""On-call commands over HTTP (`POST /v1/commands`): kill, throttle and resume an agent, or every agent the
service knows in a team or environment, authenticated by bearer token, allowed by role, and audited with
the principal who gave them — refusals included. A selection (team, environment) is expanded to the agents
known when the command is given (an agent that appears later is not covered), and each is audited with the
selection it came from. `tool` or `model` narrows the command to those calls of the selected agents (all
known agents when none is selected), beside their agent-wide decisions."""

from __future__ import annotations

import difflib
from typing import Any

from aiohttp import web

from spanwarden.enforcers.actors import recorded
from spanwarden.enforcers.decision import Action, parse_scope
from spanwarden.server import auth
from spanwarden.server.routes import Handler
from spanwarden.server.runtime import Runtime

COMMANDS = {"kill": Action.HALT, "throttle": Action.THROTTLE, "resume": Action.ALLOW, "warn": Action.WARN}


class CommandNotApplied(RuntimeError):
    """The runtime took the command but could not confirm the decision in time (answered 504)."""


def unknown_agent(agent: str, known_agents: list[str]) -> web.Response:
    """404 for a command that asks (`require_known`, as the CLI does unless --new) to name an agent the
    service has heard of, and does not: a typo must not look like a kill."""
    like = difflib.get_close_matches(agent, known_agents, n=3)
    hint = f"; did you mean {', '.join(like)}?" if like else ""
    return web.json_response({"code": 404, "unknown_agent": agent, "message": (
        f"agent {agent!r} has never reported to this service, nothing was done{hint} (to decide for an agent "
        "that has not reported yet, add --new)")}, status=404)


def handler(runtime: Runtime) -> Handler:
    """`POST /v1/commands` (oncall: the auth middleware has checked the role); the runtime makes the decision
    (in-process, or through the Kafka runtime's workers)."""
    async def command(request: web.Request) -> web.Response:
        try:
            body: dict[str, Any] = await request.json()
            name = str(body["command"])
            scope = {k: str(body[k]) for k in ("agent", "team", "environment") if body.get(k)}
            calls = parse_scope(body.get("tool"), body.get("model"), body.get("resource"))
            if not scope and not calls:
                raise KeyError("agent, team, environment, tool or model")
            agent = scope.get("agent", "")
            reason = str(body.get("reason", ""))
            rate = None if body.get("rate_per_s") is None else float(body["rate_per_s"])
            expires = None if body.get("expires_s") is None else float(body["expires_s"])
            if rate is not None and not rate > 0:
                raise ValueError("rate_per_s must be > 0")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with command and agent, numeric "
                                      f"rate_per_s/expires_s ({exc})"}, status=400)
        if name not in COMMANDS:
            return web.json_response({"code": 400, "message": f"unknown command {name!r}; one of "
                                      f"{sorted(COMMANDS)}"}, status=400)
        now = runtime.clock()
        principal = auth.principal(request)
        if agent and body.get("require_known") and not runtime.knows(agent):
            return unknown_agent(agent, list(runtime.agents))
        if name == "kill" and not reason.strip():
            return web.json_response({"code": 400, "message": "kill needs a reason"}, status=400)
        action = COMMANDS[name]
        if action is Action.THROTTLE and rate is None:
            rate = runtime.policy.throttle_per_s
        stated = str(body.get("actor", "")).strip()
        actor = recorded(principal.name, stated)  # "admin for root": root, with the admin token
        targets = [agent] if agent else sorted(
            a for a, ref in runtime.agents.items()
            if all(getattr(ref, k) == v for k, v in scope.items() if k != "agent"))
        if not targets:
            return web.json_response({"code": 404, "unknown_agent": str(scope), "message": f"no known agent "
                                      f"matches {scope}, nothing was done"}, status=404)
        try:
            decisions = [await runtime.apply_command(
                target, action, reason or f"{name} by {actor}", actor, now, expires,
                rate if action is Action.THROTTLE else None, scope or {"all": "known"}, calls)
                for target in targets]
        except CommandNotApplied as exc:
            return web.json_response({"code": 504, "message": str(exc)}, status=504)
        if agent:
            return web.json_response(decisions[0].to_dict())
        return web.json_response({"scope": scope, "decisions": [d.to_dict() for d in decisions]})

    return command
