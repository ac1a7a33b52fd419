"""Pages from the package's Jinja2 templates, each answered with the console's security headers: a strict
CSP (everything from this origin only; no inline script or style), no framing, no referrer, no caching."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "—"
    return datetime.fromtimestamp(float(epoch_s), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def segment(value: object) -> str:
    """`value` as one URL path segment: every reserved character quoted, `/` and `\\` included (an agent
    id such as `support/Triage` must stay one segment)."""
    return quote(str(value), safe="")


def usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("spanwarden.console", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, usd=usd, percent=percent, segment=segment)
    return env


def secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(HEADERS)
    return response


def html(env: jinja2.Environment, template: str, status: int = 200, **context: Any) -> web.Response:
    response = web.Response(text=env.get_template(template).render(**context), status=status,
                            content_type="text/html")
    secure(response)
    return response
