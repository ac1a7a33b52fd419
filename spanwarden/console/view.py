"""What every console handler stands on: the console's parts (`Console`, one per app), and `View` — the
signed-in person's session, their CSRF-checked form, the API called as them, and the page rendered with the
navigation. `page(console, handler)` makes a request handler of a view handler: no session is a redirect to
sign-in (for htmx, an HX-Redirect), a POST without the session's CSRF token is refused 403."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from spanwarden.console.api_client import ApiAnswer, ApiClient
from spanwarden.console.render import html, secure
from spanwarden.console.sessions import Session, Sessions, csrf_ok
from spanwarden.enforcers.roles import Role

log = logging.getLogger("spanwarden.console")


@dataclass
class Console:
    sessions: Sessions
    api: ApiClient
    env: jinja2.Environment
    state_dir: Path
    audit_key: bytes | None
    flashes: dict[str, str] = field(default_factory=dict)  # session id -> what the last action did


@dataclass
class View:
    request: web.Request
    console: Console
    session: Session
    form: dict[str, str]

    @property
    def may_act(self) -> bool:
        return self.session.principal.role >= Role.ONCALL

    async def api(self, method: str, path: str, params: dict[str, str] | None = None,
                  json: dict[str, Any] | None = None) -> ApiAnswer:
        return await self.console.api.call(self.request, self.session.token, method, path, params, json)

    def flash(self, message: str) -> None:
        self.console.flashes[self.session.id] = message[:500]

    def page(self, template: str, status: int = 200, **context: Any) -> web.Response:
        return html(self.console.env, template, status, principal=self.session.principal,
                    csrf=self.session.csrf, may_act=self.may_act,
                    flash=self.console.flashes.pop(self.session.id, None), **context)

    def fragment(self, template: str, **context: Any) -> web.Response:
        return html(self.console.env, template, principal=self.session.principal, csrf=self.session.csrf,
                    may_act=self.may_act, **context)

    def back(self, path: str) -> web.Response:
        """After a POST: see the result (303 turns the browser's POST into a GET)."""
        return see_other(path)

    def refused(self, status: int, message: str) -> web.Response:
        return self.page("error.html", status=status, message=message)


Handler = Callable[[View], Awaitable[web.StreamResponse]]


def see_other(path: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": path})
    secure(response)
    return response


def safe_next(path: str | None) -> str:
    """Only a path on this site (never `//host` or a full URL) is followed after sign-in."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def page(console: Console, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = console.sessions.of(request)
        if session is None:
            target = "/sign-in?next=" + quote(safe_next(request.path_qs if request.method == "GET" else "/"))
            if request.headers.get("HX-Request"):
                return secure(web.Response(status=401, headers={"HX-Redirect": target}))
            return see_other(target)
        form: dict[str, str] = {}
        if request.method == "POST":
            posted = await request.post()
            form = {k: v for k, v in posted.items() if isinstance(v, str)}
            if not csrf_ok(session.csrf, form.get("csrf")):
                log.warning("console: %s %s by %s refused: missing or wrong CSRF token", request.method,
                            request.path, session.principal.name)
                return html(console.env, "error.html", 403, principal=session.principal, csrf=session.csrf,
                            may_act=False, flash=None,
                            message="This form is stale or was not sent by the console (CSRF token mismatch). "
                                    "Reload the page and try again.")
        return await handler(View(request, console, session, form))
    return wrapped
