"""On-call commands over HTTP (`POST /v1/commands`): kill, throttle and resume an agent, or every agent the
service knows in a team or environment, authenticated by bearer token, allowed by role, and audited with
the principal who gave them — refusals included. A selection (team, environment) is expanded to the agents
known when the command is given (an agent that appears later is not covered), and each is audited with the
selection it came from. `tool` or `model` narrows the command to those calls of the selected agents (all
known agents when none is selected), beside their agent-wide decisions."""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from spanwarden.audit_sink import AuditSink
from spanwarden.enforcers.audit_log import AgentRef, AuditChainBroken
from spanwarden.enforcers.decision import Action, Decision, parse_scope
from spanwarden.enforcers.policy import Policy
from spanwarden.enforcers.roles import Principal, TokenBook
from spanwarden.server import refusals

log = logging.getLogger(__name__)
COMMANDS = {"kill": Action.HALT, "throttle": Action.THROTTLE, "resume": Action.ALLOW, "warn": Action.WARN}


class CommandNotApplied(RuntimeError):
    """The runtime took the command but could not confirm the decision in time (answered 504)."""


class Audited(Protocol):
    """What commands need from a runtime: where to audit, the agents it knows, the policy in force."""

    audit: AuditSink
    agents: dict[str, AgentRef]
    policy: Policy


# (agent, action, reason, actor, now_s, expires_s, throttle_per_s, selected_by, calls) -> the decision made
ApplyCommand = Callable[[str, Action, str, str, float, float | None, float | None, dict[str, str], str],
                        Awaitable[Decision]]


def authorize(request: web.Request, tokens: TokenBook, action: str, pipeline: Audited, now_s: float,
              agent: str = "") -> Principal | web.Response:
    """The principal allowed to do `action`, or the 401/403 answer (403s audited as attempts, 401s counted:
    see spanwarden.server.refusals)."""
    principal = tokens.authenticate(request.headers.get("Authorization", ""))
    if principal is not None and principal.may(action):
        return principal
    status = 401 if principal is None else 403
    actor = "unauthenticated" if principal is None else principal.actor
    why = ("no valid bearer token" if principal is None
           else f"role {principal.role.name.lower()} may not {action}")
    answer = web.json_response({"code": status, "message": f"{action} refused: {why}"}, status=status)
    limiter = refusals.of(request)
    if limiter is not None and not limiter.should_audit(actor, action, status, request.remote):
        return answer
    try:
        pipeline.audit.append("command", pipeline.agents.get(agent, AgentRef(id=agent)), actor,
                              f"refused {action}: {why}", now_s, (), pipeline.policy.version,
                              {"command": action, "outcome": "refused", "status": status,
                               "remote": request.remote or ""})
    except AuditChainBroken:  # nothing can be appended until the break is acknowledged: log it instead
        log.warning("refused %s by %s from %s (%s); not audited: the audit chain is broken", action, actor,
                    request.remote, why)
    return answer


def unknown_agent(agent: str, known_agents: list[str]) -> web.Response:
    """404 for a command that asks (`require_known`, as the CLI does unless --new) to name an agent the
    service has heard of, and does not: a typo must not look like a kill."""
    like = difflib.get_close_matches(agent, known_agents, n=3)
    hint = f"; did you mean {', '.join(like)}?" if like else ""
    return web.json_response({"code": 404, "unknown_agent": agent, "message": (
        f"agent {agent!r} has never reported to this service, nothing was done{hint} (to decide for an agent "
        "that has not reported yet, add --new)")}, status=404)


def add_routes(app: web.Application, pipeline: Audited, tokens: TokenBook, apply: ApplyCommand,
               clock: Callable[[], float] = time.time, known: Callable[[str], bool] | None = None) -> None:
    """`apply` makes the decision (in-process, or through the Kafka runtime's workers); `known` says whether
    the service has heard of an agent (default: it is among `pipeline.agents`)."""
    is_known = known or (lambda agent: agent in pipeline.agents)

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
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with command and agent, numeric "
                                      f"rate_per_s/expires_s ({exc})"}, status=400)
        if name not in COMMANDS:
            return web.json_response({"code": 400, "message": f"unknown command {name!r}; one of "
                                      f"{sorted(COMMANDS)}"}, status=400)
        now = clock()
        principal = authorize(request, tokens, name, pipeline, now, agent)
        if isinstance(principal, web.Response):
            return principal
        if agent and body.get("require_known") and not is_known(agent):
            return unknown_agent(agent, list(pipeline.agents))
        if name == "kill" and not reason.strip():
            return web.json_response({"code": 400, "message": "kill needs a reason"}, status=400)
        action = COMMANDS[name]
        if action is Action.THROTTLE and rate is None:
            rate = pipeline.policy.throttle_per_s
        stated = str(body.get("actor", "")).strip()
        actor = principal.name if not stated or stated == principal.name else f"{principal.name} for {stated}"
        targets = [agent] if agent else sorted(
            a for a, ref in pipeline.agents.items()
            if all(getattr(ref, k) == v for k, v in scope.items() if k != "agent"))
        if not targets:
            return web.json_response({"code": 404, "unknown_agent": str(scope), "message": f"no known agent "
                                      f"matches {scope}, nothing was done"}, status=404)
        try:
            decisions = [await apply(target, action, reason or f"{name} by {actor}", actor, now, expires,
                                     rate if action is Action.THROTTLE else None, scope or {"all": "known"}, calls)
                         for target in targets]
        except CommandNotApplied as exc:
            return web.json_response({"code": 504, "message": str(exc)}, status=504)
        if agent:
            return web.json_response(decisions[0].to_dict())
        return web.json_response({"scope": scope, "decisions": [d.to_dict() for d in decisions]})

    app.router.add_post("/v1/commands", command)
