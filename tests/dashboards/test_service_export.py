"""The embedded service exporting to the recording Datadog while spans flow in over real OTLP/HTTP: spend
metrics, a halt event naming the owner, the audit trail as logs; and `spanwarden top` on the same service."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from typer.testing import CliRunner

from spanwarden.cli import app
from spanwarden.collector.otlp_encode import to_request
from spanwarden.dashboards.recording_server import RecordingDatadog
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.detectors.traffic import T0, merged, normal, runaway

TOKEN = "top-token"


def test_spans_in_metrics_events_and_audit_logs_out_and_top_shows_the_halt(
        datadog: RecordingDatadog, tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, trust_span_time=True,
                                       state_dir=tmp_path, audit_fsync="never", admin_token=TOKEN,
                                       datadog_export="on", datadog_host=datadog.url, datadog_flush_s=0.3))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        records = [r._replace(owner="ana@example.com", team="search", environment="prod")
                   for r in merged(normal(5, 2), runaway(T0 + 2 * 3600, 60))]
        for start in range(0, len(records), 200):
            body = to_request(records[start:start + 200]).SerializeToString()
            assert requests.post(f"{url}/v1/traces", data=body, timeout=10,
                                 headers={"Content-Type": "application/x-protobuf"}).status_code == 200
        shown = CliRunner().invoke(app, ["top", "--once", "--url", url], env={"SPANWARDEN_TOKEN": TOKEN,
                                                                              "COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        row = next(line for line in shown.output.splitlines() if "agent-a" in line)
        assert "halt" in row and "cost_velocity" in row
        time.sleep(1.0)  # one more flush
    finally:
        service.stop()  # flushes what is left
    series = [s for r in datadog.received("/api/v2/series") for s in r.body["series"]]
    spend = sum(s["points"][0]["value"] for s in series if s["metric"] == "spanwarden.spend.usd")
    assert abs(spend - sum(r.cost_usd for r in records)) < 1e-6  # every dollar is counted once
    events = [r.body for r in datadog.received("/api/v1/events")]
    assert any(e["title"] == "spanwarden: halt agent-a in prod" and "owner:ana@example.com" in e["tags"]
               for e in events)
    logs = [item for r in datadog.received("/api/v2/logs") for item in r.body]
    assert {"finding", "decision", "service"} <= {item["kind"] for item in logs}
    assert all(item["ddsource"] == "spanwarden" for item in logs)
