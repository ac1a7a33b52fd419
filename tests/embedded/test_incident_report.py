"""The blast-radius report: from the onset of the anomaly, exactly the resources the agent touched (new ones
marked) as the spans received show them, what it spent and broke, and who decided what."""

from __future__ import annotations

import json
from pathlib import Path

import requests
from typer.testing import CliRunner

from spanwarden.cli import app
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import make_record
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.detectors.traffic import T0, TABLES, merged, normal

EXFILTRATED = ["db:pg:hr.salaries", "db:pg:crm.customers_pii", "db:pg:finance.ledger", "db:pg:auth.users"]


def _exfiltration(start: float) -> list:
    return [make_record(agent_id="agent-a", trace_id=f"{i + 1:032x}", span_id=f"e{i:015x}", tool_name="sql_query",
                        resource=name, rows=5000, start_ns=int((start + 20 * i - 1) * 1e9),
                        end_ns=int((start + 20 * i) * 1e9), fingerprint=f"tool:sql_query:x{i}")
            for i, name in enumerate(EXFILTRATED)]


def test_the_report_lists_what_was_touched_after_the_onset(tmp_path: Path) -> None:
    onset = T0 + 2 * 3600
    service = EmbeddedService(Settings(port=0, trust_span_time=True,
                                       state_dir=tmp_path, audit_fsync="never", admin_token="t"),
                              clock=lambda: onset + 600)  # the humans act after the (simulated) spans
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    records = [r._replace(owner="ana@example.com", team="crm", environment="prod")
               for r in merged(normal(8, 2), _exfiltration(onset))]
    try:
        for start in range(0, len(records), 100):
            body = to_request(records[start:start + 100]).SerializeToString()
            assert requests.post(f"{url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"},
                                 timeout=10).status_code == 200
        requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5,
                      json={"command": "resume", "agent": "agent-a", "reason": "reviewed", "actor": "omar"})
    finally:
        service.stop()
    shown = CliRunner().invoke(app, ["incident", "agent-a", "--json", "--state-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    received_after = {r.resource for r in records if r.time_s >= report["onset_s"] and r.resource}
    assert set(report["resources"]) == received_after  # exactly what the spans say, nothing else
    assert {name for name, seen in report["resources"].items() if seen["new"]} == set(EXFILTRATED) & received_after
    assert not any(seen["new"] for name, seen in report["resources"].items() if name in TABLES)
    assert "db:pg:crm.customers_pii" in received_after
    pii = report["resources"]["db:pg:crm.customers_pii"]
    assert pii["rows"] == 5000 and pii["traces"] == [f"{EXFILTRATED.index('db:pg:crm.customers_pii') + 1:032x}"]
    assert report["owner"] == "ana@example.com" and "human:admin for omar" in report["humans"]
    # in prod, reaching for new sensitive tables asks a human for each (access requests) ...
    assert any(a["kind"] == "decision" and a["action"] == "require_approval" for a in report["actions"])
    assert any(a["kind"] == "approval" and a["action"] == "pending" for a in report["actions"])
    text = CliRunner().invoke(app, ["incident", "agent-a", "--state-dir", str(tmp_path)]).output
    assert "| `db:pg:crm.customers_pii` | **new** |" in text


def test_no_anomaly_means_a_clear_error_unless_a_start_is_given(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, trust_span_time=True, state_dir=tmp_path, audit_fsync="never"))
    service.deliver(normal(1, 0.2, agent="calm"))
    service.stop()
    service.journal.close()
    refused = CliRunner().invoke(app, ["incident", "calm", "--state-dir", str(tmp_path)])
    assert refused.exit_code == 2 and "give --since" in refused.output
    given = CliRunner().invoke(app, ["incident", "calm", "--json", "--since", str(T0),
                                     "--state-dir", str(tmp_path)])
    assert json.loads(given.output)["spans"] > 0
