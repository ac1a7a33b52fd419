"""What every spanwarden HTTP app answers alike: a header that says it is spanwarden (so the CLI can tell a
wrong `--url` from a refusal), and a rate-limited warning in the log for requests to paths it does not
serve, with the likely mistake named (an OTLP endpoint pasted with its `/v1/traces`, a metrics exporter)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web

import spanwarden
from spanwarden.server import refusals

log = logging.getLogger("spanwarden.http")
HEADER = "X-Spanwarden"
WARN_EVERY_S = 60.0
MAX_REMEMBERED = 256
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def hint(path: str) -> str:
    """The likely reason a client asked for `path`."""
    if path.endswith("/v1/traces"):
        return ("set OTEL_EXPORTER_OTLP_ENDPOINT to the base URL (http://host:port) — the exporter adds "
                "/v1/traces itself — or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT to the full URL")
    if path.endswith(("/v1/metrics", "/v1/logs")):
        return "spanwarden takes traces only: set OTEL_METRICS_EXPORTER=none and OTEL_LOGS_EXPORTER=none"
    return "see the README's list of endpoints"


class UnknownPathWarnings:
    """Logs a 404 for an unserved path at most once a minute per method and path."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.count = 0

    def note(self, method: str, path: str, remote: str | None) -> None:
        self.count += 1
        key, now = (method, path[:200]), self.clock()
        last = self._last.get(key)
        if last is not None and now - last < WARN_EVERY_S:
            return
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > MAX_REMEMBERED:
            self._last.popitem(last=False)
        log.warning("%s %s from %s: no such endpoint (404); %s", method, key[1], remote or "?", hint(path))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            if request.match_info.route.resource is None:  # no route matched (not a handler's own 404)
                self.note(request.method, request.path, request.remote)
            raise


async def _identify(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[HEADER] = spanwarden.__version__


def install(app: web.Application, warnings: UnknownPathWarnings | None = None,
            middleware: bool = True) -> UnknownPathWarnings:
    """Add the header, the unknown-path warnings (unless the caller placed `warnings.middleware` itself) and
    the refusal audit's memory to `app` (before it starts)."""
    warnings = warnings or UnknownPathWarnings()
    app[refusals.KEY] = refusals.RefusalAudit()
    if middleware:
        app.middlewares.append(warnings.middleware)
    app.on_response_prepare.append(_identify)
    return warnings
