"""Monitoring the monitor: /healthz and an OpenMetrics /metrics that a Prometheus-compatible scraper parses."""

from __future__ import annotations

from pathlib import Path

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from spanwarden.collector.otlp_encode import to_request
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.detectors.traffic import T0, merged, normal, runaway


def test_health_and_openmetrics_follow_what_the_service_does(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, trust_span_time=True, state_dir=tmp_path, audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        assert requests.get(f"{url}/healthz", timeout=5).json()["last_span_age_s"] is None
        records = merged(normal(2, 2), runaway(T0 + 2 * 3600, 30))
        body = to_request(records).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        assert requests.post(f"{url}/v1/traces", data=body, headers=headers, timeout=10).status_code == 200
        assert requests.post(f"{url}/v1/traces", data=b"junk", headers=headers, timeout=10).status_code == 400
        health = requests.get(f"{url}/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["records"] == len(records) and health["agents"] == 1
        scraped = requests.get(f"{url}/metrics", timeout=5)
        assert scraped.headers["Content-Type"].startswith("application/openmetrics-text")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    finally:
        service.stop()
    assert samples[("spanwarden_records_total", ())] == len(records)
    assert samples[("spanwarden_decisions_in_force", (("action", "halt"),))] == 1
    assert samples[("spanwarden_audit_chain_ok", ())] == 1
    route = (("method", "POST"), ("route", "/v1/traces"))
    assert samples[("spanwarden_http_requests_total", (*route, ("status", "200")))] == 1
    assert samples[("spanwarden_http_requests_total", (*route, ("status", "400")))] == 1
    assert samples[("spanwarden_process_resident_memory_bytes", ())] > 0
