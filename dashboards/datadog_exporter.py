"""Sends telemetry batches to Datadog with `datadog-api-client`, off the pipeline's thread.

`submit` never blocks: batches wait in a bounded queue and a full queue drops the oldest batch (counted).
A sender thread posts metrics (v2 series), events (v1) and logs (v2, `ddsource:spanwarden`); the client
retries 429 and 5xx answers itself, waiting as long as Datadog's `X-RateLimit-Reset` asks, with
exponential backoff otherwise. What still fails is dropped and counted per signal, and the counts go out
as `spanwarden.exporter.dropped` with the next batch. Keys and site come the Datadog way: `DD_API_KEY`,
`DD_APP_KEY`, `DD_SITE`."""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import OpenApiException
from datadog_api_client.model_utils import unset
from datadog_api_client.rest import ClientRetry
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v1.model.event_alert_type import EventAlertType
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_series import MetricSeries
from urllib3.exceptions import HTTPError

from spanwarden.dashboards.metrics_catalog import COUNT, METRICS
from spanwarden.dashboards.telemetry import Batch, Point

log = logging.getLogger(__name__)
MAX_SERIES_PER_REQUEST = 500  # well under the v2 series 512 KB compressed limit for spanwarden's tags
MAX_LOGS_PER_REQUEST = 1000  # Datadog's limit per logs request


def datadog_configuration(host: str | None = None, max_retries: int = 3, backoff_s: float = 2.0) -> Configuration:
    """The client configuration: keys and site from DD_* variables, `host` to point elsewhere (a proxy, or a
    local server in tests), the client's own retries on 429 (waiting as X-RateLimit-Reset says) and 5xx
    (exponential backoff from `backoff_s`; the client's own setting refuses less than 2 s, so the policy
    is built here)."""
    retry = ClientRetry(total=max_retries, backoff_factor=backoff_s)
    config = Configuration(host=host, retry_policy=retry)
    config.request_timeout = 10  # type: ignore[attr-defined]
    return config


class DatadogExporter:
    def __init__(self, configuration: Configuration, max_batches: int = 100,
                 service: str = "spanwarden", hostname: str = "") -> None:
        self.configuration = configuration
        self.service = service
        self.hostname = hostname
        self._queue: deque[Batch] = deque()
        self._max_batches = max_batches
        self._lock = threading.Condition()
        self._closed = False
        self.dropped: Counter[str] = Counter()  # signal -> items dropped, reported and kept as a total
        self._unreported: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="spanwarden-datadog", daemon=True)

    def start(self) -> DatadogExporter:
        self._thread.start()
        return self

    def self_metrics(self) -> list[Point]:
        """The exporter's own health, to ride along with the next batch."""
        with self._lock:
            points = [Point("spanwarden.exporter.dropped", float(n), (f"signal:{signal}",))
                      for signal, n in self._unreported.items()]
            self._unreported.clear()
            points.append(Point("spanwarden.exporter.queue_depth", float(len(self._queue)), ()))
        return points

    def submit(self, batch: Batch) -> None:
        """Queue a batch (never blocks); when the queue is full the oldest batch is dropped."""
        if not len(batch):
            return
        with self._lock:
            if len(self._queue) >= self._max_batches:
                self._drop(self._queue.popleft(), "queue full")
            self._queue.append(batch)
            self._lock.notify()

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (within `timeout_s`), then stop."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout_s)

    def _drop(self, batch: Batch, why: str, signals: tuple[str, ...] = ("metrics", "events", "logs")) -> None:
        sizes = {"metrics": len(batch.points), "events": len(batch.events), "logs": len(batch.logs)}
        for signal in signals:
            if sizes[signal]:
                self.dropped[signal] += sizes[signal]
                self._unreported[signal] += sizes[signal]
        log.warning("dropped %s from Datadog export: %s", {s: sizes[s] for s in signals if sizes[s]}, why)

    def _run(self) -> None:
        with ApiClient(self.configuration) as client:
            apis = (MetricsApi(client), EventsApi(client), LogsApi(client))
            while True:
                with self._lock:
                    while not self._queue and not self._closed:
                        self._lock.wait()
                    if not self._queue:
                        return
                    batch = self._queue.popleft()
                self._send(batch, *apis)

    def _send(self, batch: Batch, metrics: MetricsApi, events: EventsApi, logs: LogsApi) -> None:
        self._attempt(batch, "metrics", len(batch.points), lambda: [
            metrics.submit_metrics(body=MetricPayload(series=chunk))
            for chunk in _chunks(self._series(batch), MAX_SERIES_PER_REQUEST)])
        self._attempt(batch, "events", len(batch.events), lambda: [
            events.create_event(body=EventCreateRequest(
                title=e["title"][:100], text=e["text"][:4000], tags=e["tags"], date_happened=batch.time_s,
                alert_type=EventAlertType(e["alert_type"]), aggregation_key=e["aggregation_key"],
                source_type_name="spanwarden")) for e in batch.events])
        self._attempt(batch, "logs", len(batch.logs), lambda: [
            logs.submit_log(body=HTTPLog([self._log_item(item) for item in chunk]))
            for chunk in _chunks(batch.logs, MAX_LOGS_PER_REQUEST)])

    def _attempt(self, batch: Batch, signal: str, size: int, send: Callable[[], Any]) -> None:
        if not size:
            return
        try:
            send()
            self.sent[signal] += size
        except (OpenApiException, HTTPError, OSError) as exc:
            with self._lock:
                self._drop(batch, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", (signal,))

    def _series(self, batch: Batch) -> list[MetricSeries]:
        out = []
        for point in batch.points:
            spec = METRICS[point.metric]
            kind = MetricIntakeType.COUNT if spec.type == COUNT else MetricIntakeType.GAUGE
            out.append(MetricSeries(metric=point.metric, type=kind, tags=list(point.tags), unit=spec.unit or unset,
                                    points=[MetricPoint(timestamp=batch.time_s, value=point.value)]))
        return out

    def _log_item(self, item: dict[str, Any]) -> HTTPLogItem:
        fields = {k: v for k, v in item.items() if k not in ("message", "ddtags")}
        return HTTPLogItem(message=item["message"], ddsource="spanwarden", ddtags=item["ddtags"],
                           service=self.service, hostname=self.hostname or unset, **fields)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
