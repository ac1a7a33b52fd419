"""Signing in and out. The sign-in form is protected by its own CSRF token (a cookie and a hidden field
that must match), the token is posted in the form body only, and neither it nor a wrong guess is logged —
only the name of whoever signed in."""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from spanwarden.console.render import html
from spanwarden.console.sessions import COOKIE, SIGN_IN_COOKIE, SignInRefused, csrf_ok, set_cookie
from spanwarden.console.view import Console, View, safe_next, see_other

log = logging.getLogger("spanwarden.console")


def _form(console: Console, request: web.Request, status: int = 200, error: str = "") -> web.Response:
    csrf = secrets.token_urlsafe(32)
    response = html(console.env, "sign_in.html", status, csrf=csrf, error=error,
                    next=safe_next(request.query.get("next")))
    set_cookie(response, request, SIGN_IN_COOKIE, csrf, max_age_s=3600)
    return response


async def show(console: Console, request: web.Request) -> web.Response:
    return _form(console, request)


async def submit(console: Console, request: web.Request) -> web.Response:
    form = await request.post()
    if not csrf_ok(request.cookies.get(SIGN_IN_COOKIE, ""), form.get("csrf")):
        return _form(console, request, 403, "The sign-in form expired; try again.")
    try:
        session = console.sessions.sign_in(str(form.get("token", "")))
    except SignInRefused as exc:
        return _form(console, request, 401, f"Not signed in: {exc}.")
    log.info("console: %s (%s) signed in from %s", session.principal.name, session.principal.role.name.lower(),
             request.remote)
    response = see_other(safe_next(str(form.get("next", "/"))))
    set_cookie(response, request, COOKIE, session.id, max_age_s=console.sessions.lifetime_s)
    response.del_cookie(SIGN_IN_COOKIE, path="/")
    return response


async def sign_out(view: View) -> web.StreamResponse:
    view.console.sessions.sign_out(view.session.id)
    log.info("console: %s signed out", view.session.principal.name)
    response = see_other("/sign-in")
    response.del_cookie(COOKIE, path="/")
    return response
