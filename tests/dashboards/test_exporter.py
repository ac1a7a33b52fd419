"""The exporter with the real datadog-api-client against the recording server: paths, keys, payloads,
batching, waiting out a 429 as Datadog asks, and counting what it had to drop when Datadog is down."""

from __future__ import annotations

import time

from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.dashboards.datadog_exporter import DatadogExporter, datadog_configuration
from spanwarden.dashboards.recording_server import RecordingDatadog
from spanwarden.dashboards.telemetry import Batch, Point, Telemetry
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry
from spanwarden.enforcers.decision import Action, Decision

REF = AgentRef("billing-bot", "ana@example.com", "finance", "prod")


def _exporter(server: RecordingDatadog, **kwargs: object) -> DatadogExporter:
    return DatadogExporter(datadog_configuration(server.url, max_retries=2, backoff_s=0.05), **kwargs).start()


def _batch(now: float) -> Batch:
    telemetry = Telemetry(PriceTable.load().canonical_name)
    who = {"agent_id": "billing-bot", "team": "finance", "environment": "prod"}
    telemetry.records([make_record(**who, model="gpt-4o-2024-08-06", cost_usd=0.5, end_ns=int((now - 2) * 1e9)),
                       make_record(**who, model="mystery-9", cost_usd=0.25, is_error=True,
                                   end_ns=int((now - 1) * 1e9))], now)
    telemetry.finding(Finding("billing-bot", "cost_velocity", "spike", 4.2, Severity.CRITICAL, 9.0, 1.0, "usd",
                              "spent $9", now), REF)
    telemetry.decision(Decision("billing-bot", Action.HALT, "runaway spend", "policy:cost-runaway@v1", now, 3),
                       REF)
    telemetry.audit(AuditEntry(7, now, "decision", REF, "policy:cost-runaway@v1", "runaway spend", ("ab/cd",),
                               "v1", {"action": "halt"}, "prev", "hash"))
    return telemetry.flush(now)


def test_metrics_events_and_audit_logs_arrive_as_datadog_expects(datadog: RecordingDatadog) -> None:
    exporter = _exporter(datadog)
    exporter.submit(_batch(time.time()))
    exporter.close()
    [series] = datadog.received("/api/v2/series")
    assert series.headers["DD-API-KEY"] == datadog.api_key
    by_name = {(s["metric"], tuple(s["tags"])): s for s in series.body["series"]}
    spend = {k[1][-1]: v["points"][0]["value"] for k, v in by_name.items() if k[0] == "spanwarden.spend.usd"}
    assert spend == {"model:gpt-4o": 0.5, "model:unpriced": 0.25}  # unknown model names never become tags
    assert by_name[("spanwarden.detector.score", ("agent:billing-bot", "team:finance", "env:prod",
                                                  "detector:cost_velocity"))]["type"] == 3  # gauge
    [event] = datadog.received("/api/v1/events")
    assert event.body["title"] == "spanwarden: halt billing-bot in prod" and event.body["alert_type"] == "error"
    assert "ana@example.com" in event.body["text"] and "owner:ana@example.com" in event.body["tags"]
    [logs] = datadog.received("/api/v2/logs")
    assert logs.body[0]["ddsource"] == "spanwarden" and logs.body[0]["seq"] == 7
    assert "agent:billing-bot" in logs.body[0]["ddtags"] and logs.body[0]["hash"] == "hash"
    assert exporter.sent == {"metrics": len(series.body["series"]), "events": 1, "logs": 1}
    assert not exporter.dropped


def test_a_large_batch_is_split_into_requests(datadog: RecordingDatadog) -> None:
    exporter = _exporter(datadog)
    now = int(time.time())
    exporter.submit(Batch(now, points=[Point("spanwarden.calls", 1.0, (f"agent:a{i}",)) for i in range(1200)]))
    exporter.close()
    assert [len(r.body["series"]) for r in datadog.received("/api/v2/series")] == [500, 500, 200]


def test_a_429_is_waited_out_as_x_ratelimit_reset_asks(datadog: RecordingDatadog) -> None:
    datadog.fail_next = [(429, {"X-RateLimit-Reset": "1", "X-RateLimit-Limit": "100"})]
    exporter = _exporter(datadog)
    exporter.submit(Batch(int(time.time()), points=[Point("spanwarden.pipeline.records", 5.0, ())]))
    exporter.close(30)
    first, second = datadog.received("/api/v2/series")
    assert second.at - first.at >= 0.9  # waited the second Datadog asked for, not the 0.05 s backoff
    assert exporter.sent["metrics"] == 1 and not exporter.dropped


def test_when_datadog_is_down_drops_are_counted_and_reported_and_submit_never_blocks(
        datadog: RecordingDatadog) -> None:
    datadog.down = True
    exporter = _exporter(datadog, max_batches=3)
    started = time.monotonic()
    for _ in range(50):
        exporter.submit(_batch(time.time()))
    assert time.monotonic() - started < 5  # generous: submitting only appends to a bounded queue
    exporter.close(60)
    assert exporter.dropped["metrics"] > 0 and exporter.dropped["events"] > 0 and exporter.dropped["logs"] > 0
    assert not exporter.sent
    reported = {p.tags: p.value for p in exporter.self_metrics() if p.metric == "spanwarden.exporter.dropped"}
    assert reported[("signal:events",)] == exporter.dropped["events"]
    datadog.down = False
    assert {p.metric for p in exporter.self_metrics()} == {"spanwarden.exporter.queue_depth"}  # reported once
