"""The console's routes, each with its role (the server layer's route table lists them), and `add_routes`,
which serves them on an app (`spanwarden.server.app.build` mounts the console in both runtimes).

Every page needs a signed-in session, which only a viewer, oncall or admin token can open; the console
checks it itself, so a browser without one is sent to sign in rather than answered 401. The actions
(`oncall`) are sent to the API as the signed-in person, whose role check and audit apply as for the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from spanwarden.console import agent_page, approvals_page, audit_page, fleet_page, sign_in
from spanwarden.console.api_client import ApiClient
from spanwarden.console.render import environment, secure
from spanwarden.console.sessions import SessionResolver, Sessions
from spanwarden.console.view import Console, Handler, page
from spanwarden.enforcers.roles import TokenBook
from spanwarden.server.auth import Resolver, bearer
from spanwarden.server.routes import Access, Route
from spanwarden.settings import Settings

STATIC = {"htmx.min.js": "text/javascript", "console.css": "text/css"}
RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SignIn = Callable[[Console, web.Request], Awaitable[web.StreamResponse]]

# (method, path, role, handler): "viewer" pages need any signed-in session (the console checks it itself,
# redirecting to sign-in); "oncall" actions are also checked by the API they are sent to, as the person.
Row = tuple[str, str, str, Callable[[Console], RequestHandler]]


def _page(handler: Handler) -> Callable[[Console], RequestHandler]:
    return lambda console: page(console, handler)


def _open(handler: SignIn) -> Callable[[Console], RequestHandler]:
    def bind(console: Console) -> RequestHandler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            return await handler(console, request)
        return wrapped
    return bind


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = resources.files("spanwarden.console").joinpath("static", name).read_bytes()
    response = web.Response(body=body, content_type=STATIC[name])
    secure(response)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


ROUTES: tuple[Row, ...] = (
    ("GET", "/", "viewer", _page(fleet_page.fleet)),
    ("GET", "/fleet/rows", "viewer", _page(fleet_page.rows)),
    # any agent id, `/` included (`support/Triage`): links quote it whole (`segment`), but a typed URL may not
    ("GET", "/agents/{agent:.+}", "viewer", _page(agent_page.agent)),
    ("POST", "/agents/{agent:.+}/command", "oncall", _page(agent_page.command)),
    ("GET", "/approvals", "viewer", _page(approvals_page.approvals)),
    ("GET", "/approvals/{id}", "viewer", _page(approvals_page.one)),
    ("POST", "/approvals/{id}/answer", "oncall", _page(approvals_page.answer_approval)),
    ("GET", "/access-requests/{id}", "viewer", _page(approvals_page.one)),
    ("POST", "/access-requests/{id}/answer", "oncall", _page(approvals_page.answer_access)),
    ("GET", "/audit", "viewer", _page(audit_page.audit)),
    ("GET", "/audit/export", "viewer", _page(audit_page.download)),
    ("POST", "/sign-out", "viewer", _page(sign_in.sign_out)),
    ("GET", "/sign-in", "public", _open(sign_in.show)),
    ("POST", "/sign-in", "public", _open(sign_in.submit)),
    ("GET", "/console/static/{name}", "public", lambda console: static),
)
ROLES = {(method, path): role for method, path, role, _ in ROUTES}


def _console(tokens: TokenBook, settings: Settings) -> Console:
    key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
    return Console(Sessions(tokens), ApiClient(), environment(), Path(settings.state_dir), key)


def for_app(tokens: TokenBook, settings: Settings) -> tuple[list[tuple[Route, RequestHandler]], list[Resolver]]:
    """The console's routes for `server.app.build(runtime, extra, resolvers)` — pages `public` to the auth
    middleware (the console checks the session itself), actions `oncall` — and the resolvers: the console's
    session cookie, then the bearer token. Pages read the audit log and the activity journal in
    `settings.state_dir`, as `spanwarden audit` and `incident` do."""
    console = _console(tokens, settings)
    extra = [(Route(method, path, Access.ONCALL if role == "oncall" else Access.PUBLIC, "console",
                    "command" if path.endswith("/command") else "approve" if role == "oncall" else "",
                    mutates=role == "oncall"), bind(console))
             for method, path, role, bind in ROUTES]
    return extra, [SessionResolver(console.sessions), bearer(tokens)]


def add_routes(app: web.Application, tokens: TokenBook, settings: Settings) -> SessionResolver:
    """Serve the console on a plain `app` (outside the server layer's table); returns the session resolver."""
    console = _console(tokens, settings)
    for method, path, _, bind in ROUTES:
        app.router.add_route(method, path, bind(console))
    return SessionResolver(console.sessions)
