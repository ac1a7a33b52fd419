"""Incident reports at the service's time, as status: a span dated 30 days back or 2 hours ahead is kept in
the activity journal at about when the service received it (clamped, as the pipeline holds it), so it is in
`incident --since 1h` and does not move "history kept from" into the future; the report names the agent's
environment from its spans as status does; /metrics counts the clamped records."""

from __future__ import annotations

from pathlib import Path

import requests

from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import make_record
from spanwarden.embedded import incident_report
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

NOW = 1_800_000_000.0


def test_back_and_forward_dated_spans_are_reported_at_their_receipt(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", admin_token="t"),
                              clock=lambda: NOW)
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    dated = {"h9-past": NOW - 30 * 86400, "h9-future": NOW + 2 * 3600, "h9-now": NOW - 1}
    records = [make_record(agent_id=agent, environment="prod", team="ops", owner="ana@example.com",
                           model="gpt-4o-mini", cost_usd=0.25, start_ns=int((t - 1) * 1e9), end_ns=int(t * 1e9))
               for agent, t in dated.items()]
    try:
        assert requests.post(f"{url}/v1/traces", data=to_request(records).SerializeToString(), timeout=10,
                             headers={"Content-Type": "application/x-protobuf"}).status_code == 200
        status = {a["agent"]: a for a in requests.get(f"{url}/v1/status", headers={"Authorization": "Bearer t"},
                                                      timeout=10).json()["agents"]}
        metrics = requests.get(f"{url}/metrics", timeout=10).text
    finally:
        service.stop()
    assert "spanwarden_records_clamped_total 2.0" in metrics
    for agent in dated:
        report = incident_report.build(tmp_path, agent, since_s=NOW - 3600)
        assert report["spans"] == 1 and report["spend_usd"] == 0.25, (agent, report)
        assert NOW - 3600 <= report["history_from_s"] <= NOW + 5, (agent, report["history_from_s"])
        assert report["environment"] == status[agent]["environment"] == "prod"
        assert (report["team"], report["owner"]) == ("ops", "ana@example.com")
        assert "environment prod" in incident_report.markdown(report)
