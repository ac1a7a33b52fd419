"""The handlers about the service itself, alike in both runtimes: `/healthz` (can it take spans and commands,
and if not, why — every background task included), `/metrics` (its own figures), `/metrics/agents`,
`/v1/status`, profiles, policy reload and the broken-chain acknowledgement. The auth middleware has checked
each route's role before these run."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import orjson
from aiohttp import web

from spanwarden.server import auth
from spanwarden.server.routes import Handler
from spanwarden.server.runtime import Runtime
from spanwarden.server.self_metrics import SelfMetrics, exposition_off_loop, registry_of

log = logging.getLogger("spanwarden.server")


def health(runtime: Runtime) -> web.Response:
    """200 while the runtime can take spans and commands; 503 with why (audit chain broken, disk full, a
    background task dead)."""
    body: dict[str, Any] = {"runtime": runtime.kind, **runtime.health_body(), "tasks": runtime.supervisor.view()}
    problem = runtime.durability.problem()
    dead = runtime.supervisor.problems()
    if problem is not None:
        return web.json_response({"status": problem[0], "message": problem[1], **body}, status=503)
    if dead:  # dead, though nothing that intake depends on
        named = ", ".join(f"{name} ({why})" for name, why in sorted(dead.items()))
        return web.json_response({"status": "task_dead", "message": f"background task {named} died", **body},
                                 status=503)
    return web.json_response({"status": "ok", **body})


def handlers(runtime: Runtime, metrics: SelfMetrics) -> dict[str, Handler]:
    agents_registry = registry_of(runtime.agent_figures)

    async def healthz(request: web.Request) -> web.Response:
        return health(runtime)

    async def self_metrics(request: web.Request) -> web.Response:
        return await exposition_off_loop(metrics.registry)

    async def agent_metrics(request: web.Request) -> web.Response:
        runtime.agent_figures()  # NotOffered (501) before an empty exposition
        return await exposition_off_loop(agents_registry)

    async def status(request: web.Request) -> web.Response:
        rows = getattr(runtime, "status_rows", None)  # in chunks, where the runtime can (thousands of agents)
        agents = await rows() if rows is not None else runtime.status()
        return web.Response(body=orjson.dumps({"agents": agents}), content_type="application/json")

    async def profile(request: web.Request) -> web.Response:
        found = runtime.profile(request.match_info["agent"])
        if inspect.isawaitable(found):  # a runtime that asks the agent's worker (Kafka)
            found = await found
        if found is None:
            agent = request.match_info["agent"]
            if runtime.knows(agent):  # decided about, but nothing learned (yet, or again since a lost state)
                return web.json_response({"code": 404, "message": f"{agent} has no learned profile yet: the "
                                          "service has judged none of its spans since it started learning"},
                                         status=404)
            return web.json_response({"code": 404, "unknown_agent": agent,
                                      "message": f"no agent named {agent!r} has reported"}, status=404)
        return web.json_response(found)

    async def profile_pin(request: web.Request) -> web.Response:
        agent_id, actor = request.match_info["agent"], auth.principal(request).actor
        try:
            body: dict[str, Any] = await request.json() if request.can_read_body else {}
            reason = str(body.get("reason", "")).strip()
            given = body.get("profile")
            if not reason:
                return web.json_response({"code": 400, "message": "pinning needs a reason"}, status=400)
            pinned = runtime.pin_profile(agent_id, actor, reason, given)
            if inspect.isawaitable(pinned):  # a runtime that pins on the agent's worker (Kafka)
                pinned = await pinned
            return web.json_response(pinned)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"cannot pin: {exc}"}, status=400)

    async def policy_reload(request: web.Request) -> web.Response:
        error = runtime.reload_policy(auth.principal(request).actor)
        if inspect.isawaitable(error):  # a runtime that publishes the policy (Kafka) answers once it has
            error = await error
        if error:
            return web.json_response({"code": 400, "message": error}, status=400)
        return web.json_response({"policy_version": runtime.policy.version})

    async def audit_acknowledge(request: web.Request) -> web.Response:
        try:
            reason = str((await request.json())["reason"]).strip()
        except (ValueError, KeyError, TypeError):
            reason = ""
        if not reason:
            return web.json_response({"code": 400, "message": "acknowledge needs a reason"}, status=400)
        if runtime.durability.broken is None:
            return web.json_response({"code": 409, "message": "the audit log is intact"}, status=409)
        moved = runtime.acknowledge_broken_audit(auth.principal(request).actor, reason)
        return web.json_response({"moved_to": moved})

    return {"health": healthz, "metrics": self_metrics, "agent_metrics": agent_metrics, "status": status,
            "profile": profile, "profile_pin": profile_pin, "policy_reload": policy_reload,
            "audit_acknowledge": audit_acknowledge}
