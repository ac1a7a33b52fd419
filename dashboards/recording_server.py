"""A stand-in for Datadog's API on loopback that records what it is sent and answers as Datadog does: for
the tests, and for trying the exporter and `datadog push` without an account (`spanwarden datadog record`).

It checks what the real API checks for these calls: the API key header on every call and the application
key on dashboards and monitors; metric points with a metric name, a known type and timestamps no more than
an hour old or ten minutes ahead; events with a title and text; logs as a list of items with a message;
dashboards with a title, layout type and widgets; monitors with a name, type, query and message. It can be
told to fail (`fail_next`: statuses with headers, e.g. 429 with X-RateLimit-Reset; `down`: 500 always)."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

LAYOUTS = ("ordered", "free")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = 0.0  # monotonic time received


@dataclass
class RecordingDatadog:
    api_key: str = "test-api-key"
    app_key: str = "test-app-key"
    requests: list[Recorded] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    down: bool = False
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitors: dict[int, dict[str, Any]] = field(default_factory=dict)
    port: int | None = None
    clock: Any = time.time

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # --- the API ---------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate], client_max_size=64 << 20)
        app.router.add_post("/api/v2/series", self._series)
        app.router.add_post("/api/v1/events", self._event)
        app.router.add_post("/api/v2/logs", self._logs)
        app.router.add_get("/api/v1/dashboard", self._list_dashboards)
        app.router.add_get("/api/v1/dashboard/{id}", self._get_dashboard)
        app.router.add_post("/api/v1/dashboard", self._create_dashboard)
        app.router.add_put("/api/v1/dashboard/{id}", self._update_dashboard)
        app.router.add_get("/api/v1/monitor", self._list_monitors)
        app.router.add_post("/api/v1/monitor", self._create_monitor)
        app.router.add_put("/api/v1/monitor/{id}", self._update_monitor)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await _body(request)
        with self._lock:
            self.requests.append(Recorded(request.method, request.path, dict(request.headers), body,
                                          time.monotonic()))
            failure = self.fail_next.pop(0) if self.fail_next else None
        if self.down:
            return _errors(500, "Internal Server Error")
        if failure is not None:
            status, headers = failure
            return web.json_response({"errors": [f"injected {status}"]}, status=status, headers=headers)
        if request.headers.get("DD-API-KEY") != self.api_key:
            return _errors(403, "Forbidden")
        needs_app_key = request.path.startswith(("/api/v1/dashboard", "/api/v1/monitor"))
        if needs_app_key and request.headers.get("DD-APPLICATION-KEY") != self.app_key:
            return _errors(403, "Forbidden")
        return await handler(request)

    async def _series(self, request: web.Request) -> web.Response:
        now = self.clock()
        try:
            for series in (await _body(request))["series"]:
                if not isinstance(series["metric"], str) or series.get("type", 0) not in (0, 1, 2, 3):
                    raise ValueError("metric name and type")
                for point in series["points"]:
                    if not now - 3600 <= int(point["timestamp"]) <= now + 600:
                        raise ValueError(f"point timestamp {point['timestamp']} out of range")
                    float(point["value"])
        except (KeyError, TypeError, ValueError) as exc:
            return _errors(400, f"Payload is not in the expected format: {exc}")
        return web.json_response({"errors": []}, status=202)

    async def _event(self, request: web.Request) -> web.Response:
        body = await _body(request) or {}
        if not body.get("title") or not body.get("text"):
            return _errors(400, "Event title and text are required")
        return web.json_response({"status": "ok", "event": {**body, "id": next(self._ids)}}, status=202)

    async def _logs(self, request: web.Request) -> web.Response:
        items = await _body(request)
        if not isinstance(items, list) or not all(isinstance(i, dict) and "message" in i for i in items):
            return _errors(400, "Logs must be a list of items with a message")
        return web.json_response({}, status=202)

    async def _list_dashboards(self, request: web.Request) -> web.Response:
        summaries = [{"id": d["id"], "title": d["title"], "layout_type": d["layout_type"]}
                     for d in self.dashboards.values()]
        return web.json_response({"dashboards": summaries})

    async def _get_dashboard(self, request: web.Request) -> web.Response:
        dashboard = self.dashboards.get(request.match_info["id"])
        return web.json_response(dashboard) if dashboard else _errors(404, "Dashboard not found")

    def _valid_dashboard(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not body.get("title") or body.get("layout_type") not in LAYOUTS:
            return "title and layout_type (ordered or free) are required"
        if not isinstance(body.get("widgets"), list):
            return "widgets are required"
        return None

    async def _create_dashboard(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if (problem := self._valid_dashboard(body)) is not None:
            return _errors(400, problem)
        dashboard = {**body, "id": f"sw-{next(self._ids)}"}
        self.dashboards[dashboard["id"]] = dashboard
        return web.json_response(dashboard)

    async def _update_dashboard(self, request: web.Request) -> web.Response:
        key = request.match_info["id"]
        if key not in self.dashboards:
            return _errors(404, "Dashboard not found")
        if (problem := self._valid_dashboard(await _body(request))) is not None:
            return _errors(400, problem)
        self.dashboards[key] = {**await _body(request), "id": key}
        return web.json_response(self.dashboards[key])

    async def _list_monitors(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.monitors.values()))

    def _valid_monitor(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not all(body.get(k) for k in ("name", "type", "query", "message")):
            return "name, type, query and message are required"
        return None

    async def _create_monitor(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if (problem := self._valid_monitor(body)) is not None:
            return _errors(400, problem)
        monitor = {**body, "id": next(self._ids)}
        self.monitors[monitor["id"]] = monitor
        return web.json_response(monitor)

    async def _update_monitor(self, request: web.Request) -> web.Response:
        key = int(request.match_info["id"])
        if key not in self.monitors:
            return _errors(404, "Monitor not found")
        if (problem := self._valid_monitor(await _body(request))) is not None:
            return _errors(400, problem)
        self.monitors[key] = {**await _body(request), "id": key}
        return web.json_response(self.monitors[key])

    # --- running it ------------------------------------------------------------------------------------
    async def serve(self, port: int = 0, ready: threading.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.app(), access_log=None, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self.port = runner.addresses[0][1]
        if ready is not None:
            ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def start(self) -> RecordingDatadog:
        return self.start_on(0)

    def start_on(self, port: int) -> RecordingDatadog:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve(port, ready)), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the recording Datadog server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)


async def _body(request: web.Request) -> Any:
    """The request's JSON, inflated as the client sent it (aiohttp caches the raw body)."""
    raw = await request.read()
    encoding = request.headers.get("Content-Encoding", "")
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "deflate":
        raw = zlib.decompress(raw)
    return json.loads(raw) if raw else None


def _errors(status: int, message: str) -> web.Response:
    return web.json_response({"errors": [message]}, status=status)
