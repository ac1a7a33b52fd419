"""The service's own metrics in OpenMetrics form (`GET /metrics`), so the platform team can monitor the
monitor. Values are read when scraped from counters the service keeps anyway — nothing is added to the
span path but one counter per HTTP request."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest


class ServiceCollector:
    """Reads a service's figures at scrape time; `figures()` returns name -> (type, help, value or
    {labels tuple: value}, label names)."""

    def __init__(self, figures: Callable[[], dict[str, tuple[str, str, Any, tuple[str, ...]]]]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        for name, (kind, help_text, value, labels) in self.figures().items():
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text,
                                                                                       labels=list(labels))
            if labels:
                for label_values, v in value.items():
                    family.add_metric(list(label_values), v)
            else:
                family.add_metric([], value)
            yield family


class SelfMetrics:
    """A registry per service (not the global one): process figures, HTTP requests by route and status,
    and whatever the service reports through `figures`."""

    def __init__(self, figures: Callable[[], dict[str, tuple[str, str, Any, tuple[str, ...]]]]) -> None:
        self.registry = CollectorRegistry()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        ProcessCollector(namespace="spanwarden", registry=self.registry)

        def with_requests() -> dict[str, tuple[str, str, Any, tuple[str, ...]]]:
            out = figures()
            out["spanwarden_http_requests"] = ("counter", "HTTP requests answered, by route and status",
                                               dict(self.requests), ("method", "route", "status"))
            return out

        self.registry.register(ServiceCollector(with_requests))  # type: ignore[arg-type]

    @web.middleware
    async def count_requests(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.requests[(request.method, route, str(exc.status))] += 1
            raise
        self.requests[(request.method, route, str(response.status))] += 1
        return response

    async def endpoint(self, request: web.Request) -> web.Response:
        return exposition(self.registry)


def registry_of(figures: Callable[[], dict[str, tuple[str, str, Any, tuple[str, ...]]]]) -> CollectorRegistry:
    """A registry of just what `figures` reports (the per-agent metrics' own, behind a token)."""
    registry = CollectorRegistry()
    registry.register(ServiceCollector(figures))  # type: ignore[arg-type]
    return registry


def exposition(registry: CollectorRegistry) -> web.Response:
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _Collected:
    """Metric families already read (on the loop), for rendering elsewhere."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


async def exposition_off_loop(registry: CollectorRegistry) -> web.Response:
    """The figures read on the loop (they read the runtime's state), the text rendered on a thread: with
    thousands of agent label sets, rendering would hold the loop for tens of ms."""
    rendered = await asyncio.to_thread(generate_latest, _Collected(list(registry.collect())))  # type: ignore[arg-type]
    return web.Response(body=rendered, headers={"Content-Type": CONTENT_TYPE_LATEST})
