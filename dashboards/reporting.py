"""The pipeline's link to Datadog: roll-up (`Telemetry`) plus sender (`DatadogExporter`), built from
settings. Every hook is cheap and never blocks; `flush` hands a batch to the sender's queue."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from spanwarden.collector.span_record import SpanRecord
from spanwarden.dashboards.telemetry import Telemetry
from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry
from spanwarden.enforcers.decision import Decision


def enabled(mode: str) -> bool:
    """`auto` exports when DD_API_KEY is set."""
    return mode == "on" or (mode == "auto" and bool(os.environ.get("DD_API_KEY")))


def app_url() -> str:
    return f"https://app.{os.environ.get('DD_SITE', 'datadoghq.com')}"


class DatadogReporting:
    def __init__(self, model_name: Callable[[str], str | None], host: str | None = None, max_agents: int = 1000,
                 max_batches: int = 100, wall_clock: Callable[[], float] = time.time) -> None:
        # Datadog takes points stamped with the real time, whatever clock the pipeline runs on (the demo's
        # is simulated); lag is measured on it too.
        from spanwarden.dashboards.datadog_exporter import DatadogExporter, datadog_configuration  # [datadog]

        self.wall_clock = wall_clock
        self.telemetry = Telemetry(model_name, max_agents, app_url())
        self.exporter = DatadogExporter(datadog_configuration(host), max_batches,
                                        hostname=socket.gethostname()).start()

    def records(self, records: list[SpanRecord]) -> None:
        self.telemetry.records(records, self.wall_clock())

    def finding(self, finding: Finding, ref: AgentRef) -> None:
        self.telemetry.finding(finding, ref)

    def decision(self, decision: Decision, ref: AgentRef) -> None:
        self.telemetry.decision(decision, ref)

    def audit(self, entry: AuditEntry) -> None:
        self.telemetry.audit(entry)

    def flush(self) -> None:
        self.exporter.submit(self.telemetry.flush(self.wall_clock(), self.exporter.self_metrics()))

    def close(self) -> None:
        self.flush()
        self.exporter.close()
