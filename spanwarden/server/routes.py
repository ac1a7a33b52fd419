"""The route table: every HTTP route of both runtimes, with who may call it. `app.build` registers exactly
these (a test fails for a route outside the table), the auth middleware enforces `access`, the durability
middleware holds the `mutates` ones while nothing could be audited.

Access levels: `public` (anyone who can reach the port: health, the service's own metrics, the control
channel an agent long-polls, waiting on a request whose id is random); `agent` (an agent token bound to the
agent it names, by the ingest rule of `collector/ingest_auth.py`: spans, spend leases, approval requests);
`viewer`, `oncall`, `admin` (people's named tokens; each level includes the ones before it, as in
`enforcers/roles.py`)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiohttp import web

from spanwarden.enforcers.roles import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(Enum):
    PUBLIC = "public"
    AGENT = "agent"
    VIEWER = "viewer"
    ONCALL = "oncall"
    ADMIN = "admin"

    @property
    def role(self) -> Role | None:
        """The least role a person's token needs (None: not a people's route)."""
        return {Access.VIEWER: Role.VIEWER, Access.ONCALL: Role.ONCALL, Access.ADMIN: Role.ADMIN}.get(self)


def _answer(body: dict[str, Any]) -> str:
    return "approve" if body.get("approve") else "deny"


def _command(body: dict[str, Any]) -> str:
    return str(body.get("command", "command"))


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    access: Access
    handler: str  # the name of its handler in the app's handler set (`app.handlers`)
    action: str = ""  # what a refusal is audited as (people's routes)
    mutates: bool = False  # changes state: held by the durability middleware
    action_of: Callable[[dict[str, Any]], str] | None = None  # names the action from the JSON body


P, A, V, OC, AD = Access.PUBLIC, Access.AGENT, Access.VIEWER, Access.ONCALL, Access.ADMIN
TABLE: tuple[Route, ...] = (
    Route("POST", "/v1/traces", A, "traces", "ingest", mutates=True),
    Route("GET", "/v1/decisions/{agent}", P, "decision"),
    Route("GET", "/v1/decisions", P, "decisions"),
    Route("POST", "/v1/leases", A, "lease", "lease", mutates=True),
    Route("GET", "/v1/approvals/rules", P, "approval_rules"),
    Route("POST", "/v1/approvals", A, "approval_open", "approval_request", mutates=True),
    Route("GET", "/v1/approvals", V, "approvals_pending", "status"),
    Route("GET", "/v1/approvals/{id}", P, "approval_wait"),
    Route("POST", "/v1/approvals/{id}/answer", OC, "approval_answer", "approve", True, _answer),
    Route("GET", "/v1/access-requests", V, "access_pending", "status"),
    Route("GET", "/v1/access-requests/{id}", P, "access_wait"),
    Route("POST", "/v1/access-requests/{id}/answer", OC, "access_answer", "approve", True, _answer),
    Route("POST", "/v1/commands", OC, "command", "command", True, _command),
    Route("GET", "/v1/status", V, "status", "status"),
    Route("GET", "/v1/profile/{agent}", V, "profile", "status"),
    Route("POST", "/v1/profile/{agent}/pin", AD, "profile_pin", "profile_pin", mutates=True),
    Route("POST", "/v1/policy/reload", AD, "policy_reload", "policy_reload", mutates=True),
    Route("POST", "/v1/audit/acknowledge", AD, "audit_acknowledge", "audit_acknowledge", mutates=True),
    Route("GET", "/healthz", P, "health"),
    Route("GET", "/metrics", P, "metrics"),
    Route("GET", "/metrics/agents", V, "agent_metrics", "status"),
)

KEY: web.AppKey[dict[tuple[str, str], Route]] = web.AppKey("spanwarden_routes", dict)


def register(app: web.Application, table: Iterable[Route], handlers: dict[str, Handler]) -> None:
    """Add each route of `table` with its handler (a handler missing from `handlers` is an error here, at
    build time) and remember the table for the middlewares."""
    known = app[KEY] = {}
    for route in table:
        key = (route.method, _canonical(route.path))  # as aiohttp names the resource: `{agent:.+}` is `{agent}`
        if key in known:
            raise ValueError(f"route {route.method} {route.path} is in the table twice")
        if route.handler not in handlers:
            raise ValueError(f"no handler {route.handler!r} for {route.method} {route.path}")
        known[key] = route
        if route.method == "GET":
            app.router.add_get(route.path, handlers[route.handler])  # and HEAD, as aiohttp does
        else:
            app.router.add_route(route.method, route.path, handlers[route.handler])


def _canonical(path: str) -> str:
    return re.sub(r"\{(\w+):[^{}]*\}", r"{\1}", path)


def unlisted(app: web.Application) -> list[str]:
    """The routes of `app` that are not in its table (none, or `build` refuses to make the app)."""
    known = app.get(KEY, {})
    return sorted(f"{r.method} {r.resource.canonical}" for r in app.router.routes() if r.resource is not None
                  and r.method != "HEAD" and (r.method, r.resource.canonical) not in known)


def of(request: web.Request) -> Route | None:
    """The table's entry for the route `request` matched (None for a path not served)."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return request.app.get(KEY, {}).get((method, resource.canonical))
