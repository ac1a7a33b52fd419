"""The Kafka runtime exporting to the recording Datadog: workers send what they learn and decide (spend,
scores, decisions, events), the gateway sends the audit trail it writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from spanwarden.collector.otlp_encode import to_request
from spanwarden.dashboards.recording_server import RecordingDatadog
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.detectors.traffic import T0, merged, normal, runaway
from tests.streaming.conftest import PARTITIONS
from tests.streaming.test_gateway_end_to_end import running_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _replayed_span_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANWARDEN_TRUST_SPAN_TIME", "1")  # these spans carry simulated times: workers replay them


def test_workers_and_gateway_export_to_datadog(broker: LocalBroker, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    datadog = RecordingDatadog().start()
    dd = {"DD_API_KEY": datadog.api_key, "SPANWARDEN_DATADOG_EXPORT": "on", "SPANWARDEN_DATADOG_HOST": datadog.url,
          "SPANWARDEN_DATADOG_FLUSH_S": "0.5"}
    monkeypatch.setenv("DD_API_KEY", datadog.api_key)
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS, extra_env=dd).start()
    gateway = running_gateway(broker, tmp_path, datadog_export="on", datadog_host=datadog.url, datadog_flush_s=0.5)
    url, _ = next(gateway)
    records = [r._replace(owner="ana@example.com", environment="prod")
               for r in merged(normal(6, 2), runaway(T0 + 2 * 3600, 60))]
    try:
        for start in range(0, len(records), 200):
            body = to_request(records[start:start + 200]).SerializeToString()
            assert requests.post(f"{url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"},
                                 timeout=30).status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (datadog.received("/api/v1/events")
                                                   and datadog.received("/api/v2/logs")):
            time.sleep(0.5)
        time.sleep(2)  # a few more flushes
    finally:
        worker.stop()
        next(gateway, None)
        datadog.stop()
    series = [s for r in datadog.received("/api/v2/series") for s in r.body["series"]]
    spend = sum(s["points"][0]["value"] for s in series if s["metric"] == "spanwarden.spend.usd")
    assert abs(spend - sum(r.cost_usd for r in records)) < 1e-6
    assert any(e.body["title"] == "spanwarden: halt agent-a in prod" for e in datadog.received("/api/v1/events"))
    kinds = {item["kind"] for r in datadog.received("/api/v2/logs") for item in r.body}
    assert {"finding", "decision"} <= kinds
