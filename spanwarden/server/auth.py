"""One auth rule for every route (`routes.TABLE`): public routes pass; agent routes need what the ingest rule
asks (`IngestGate.caller`: an agent token, or none where ingest auth is off or untrusted) and the handler
binds the request to the token's agent once it knows which agent the request names; people's routes need a
principal whose role reaches the route's level. The principal is left on the request (`principal()`).

Refusals: 401 (no valid credential: anyone who can reach the port) is counted and logged, never audited;
403 (a known principal past its role) is audited, once per principal and action every ten minutes
(`refusals.py`).

Principal resolution is pluggable: `Auth(runtime, resolvers=[...])` tries each resolver in order, and the
first that returns a principal wins. A resolver is `(request) -> Principal | None`; it must return None
(never raise) for a request it does not recognise, and must only ever return a principal the request
proved (a token, a signed session) — never one the client merely names. `bearer(tokens)` (the
`Authorization: Bearer` header) is the default. `page_resolvers` apply instead to the routes named there:
the web console's pages take its session cookie (the console checks the CSRF token of each POST itself),
while the API never does — a cookie the browser sends by itself must not be able to command (CSRF); the
console calls the API with the person's bearer token."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from spanwarden.collector.ingest_auth import IngestGate, IngestRefused
from spanwarden.enforcers.audit_log import AgentRef, AuditChainBroken, AuditUnwritable
from spanwarden.enforcers.roles import Principal, Role, TokenBook
from spanwarden.server import refusals, routes
from spanwarden.server.runtime import Runtime

log = logging.getLogger("spanwarden.auth")
PRINCIPAL_KEY: web.RequestKey[Principal | None] = web.RequestKey("spanwarden_principal", object)  # type: ignore[arg-type]
Resolver = Callable[[web.Request], Principal | None]


def bearer(tokens: TokenBook) -> Resolver:
    """The principal of the request's `Authorization: Bearer <token>` header."""
    return lambda request: tokens.authenticate(request.headers.get("Authorization", ""))


def principal(request: web.Request) -> Principal:
    """Who the auth middleware let through to a people's route."""
    found = request[PRINCIPAL_KEY]
    assert found is not None, "principal() is for people's routes, which the auth middleware guards"
    return found


def caller(request: web.Request) -> Principal | None:
    """Who called an agent route (None where ingest auth lets a request in without a token)."""
    return request.get(PRINCIPAL_KEY)


class Auth:
    def __init__(self, runtime: Runtime, resolvers: Sequence[Resolver] | None = None,
                 page_resolvers: dict[tuple[str, str], Sequence[Resolver]] | None = None) -> None:
        self.runtime = runtime
        self.resolvers: list[Resolver] = list(resolvers) if resolvers is not None else [bearer(runtime.tokens)]
        self.page_resolvers = {key: list(found) for key, found in (page_resolvers or {}).items()}

    def resolve(self, request: web.Request, route: routes.Route | None = None) -> Principal | None:
        chosen = self.page_resolvers.get((route.method, route.path)) if route is not None else None
        for resolver in chosen if chosen is not None else self.resolvers:
            found = resolver(request)
            if found is not None:
                return found
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: routes.Handler) -> web.StreamResponse:
        route = routes.of(request)
        if route is None or route.access is routes.Access.PUBLIC:
            return await handler(request)
        if route.access is routes.Access.AGENT:
            try:
                request[PRINCIPAL_KEY] = self.runtime.ingest.caller(request.headers.get("Authorization", ""),
                                                                    spans=route.path == "/v1/traces")
            except IngestRefused as exc:
                return web.json_response({"code": exc.status, "message": str(exc)}, status=exc.status)
            return await handler(request)
        found = self.resolve(request, route)
        needed = route.access.role
        if found is not None and needed is not None and found.role is not Role.AGENT and found.role >= needed:
            request[PRINCIPAL_KEY] = found
            return await handler(request)
        # Only a known principal's refusal is audited: only then is the body read, to name what it tried.
        body = await _body(request) if found is not None and route.method == "POST" else {}
        action = route.action_of(body) if route.action_of is not None else route.action
        return refuse(request, self.runtime, found, action, self._agent(request, body))

    def _agent(self, request: web.Request, body: dict[str, Any]) -> str:
        """The agent a refused request was about, for its audit entry ("" when none)."""
        if "agent" in request.match_info:
            return request.match_info["agent"]
        request_id = request.match_info.get("id")
        if request_id is not None:
            for book in (self.runtime.approvals.book.requests, self.runtime.access.book.requests):
                if request_id in book:
                    return str(book[request_id].agent_id)
        return str(body.get("agent", "")) if isinstance(body.get("agent", ""), str) else ""


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON body as far as it names the action (aiohttp keeps it read for the handler); {} otherwise."""
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def refuse(request: web.Request, runtime: Runtime, found: Principal | None, action: str,
           agent: str = "") -> web.Response:
    """The 401/403 answer, audited as an attempt when a known principal reached past its role."""
    status = 401 if found is None else 403
    actor = "unauthenticated" if found is None else found.actor
    why = "no valid bearer token" if found is None else f"role {found.role.name.lower()} may not {action}"
    answer = web.json_response({"code": status, "message": f"{action} refused: {why}"}, status=status)
    limiter = refusals.of(request)
    if limiter is not None and not limiter.should_audit(actor, action, status, request.remote):
        return answer
    if status == 401:  # no limiter (an app built without one): still never audited
        return answer
    try:
        runtime.sink.append("command", runtime.agents.get(agent, AgentRef(id=agent)), actor,
                            f"refused {action}: {why}", runtime.clock(), (), runtime.policy.version,
                            {"command": action, "outcome": "refused", "status": status,
                             "remote": request.remote or ""})
    except (AuditChainBroken, AuditUnwritable) as exc:  # nothing can be appended now: log it instead
        log.warning("refused %s by %s from %s (%s); not audited: %s", action, actor, request.remote, why, exc)
    return answer


def acting_agent(request: web.Request, gate: IngestGate, claimed: str) -> str | web.Response:
    """The agent an agent route's request may act for (`IngestGate.acting_for`), or the refusal to answer
    with (401/403, counted by route and status in `/metrics`, not audited)."""
    try:
        return gate.acting_for(request.headers.get("Authorization", ""), claimed)
    except IngestRefused as exc:
        return web.json_response({"code": exc.status, "message": str(exc)}, status=exc.status)
