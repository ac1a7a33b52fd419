"""Profiles: read what an agent touches as learned, pin a reviewed one (admin, audited), and drift from it
becomes a finding — once per new item."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from spanwarden.cli import app
from spanwarden.collector.span_record import make_record
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import read_entries
from spanwarden.settings import Settings
from tests.detectors.traffic import T0, TABLES, normal


def test_learn_read_pin_and_drift(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, trust_span_time=True, state_dir=tmp_path, audit_fsync="never",
                                       admin_token="t"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    env = {"SPANWARDEN_TOKEN": "t"}
    cli = CliRunner()
    try:
        service.call(lambda: service.deliver(normal(2, 1)))
        shown = cli.invoke(app, ["profile", "agent-a", "--json", "--url", url], env=env)
        assert shown.exit_code == 0, shown.output
        profile = json.loads(shown.output)
        assert set(profile["resources"]) == set(TABLES) and profile["pinned"] is None
        assert set(profile["tools"]) == {"search", "sql_query", "http_get"} and "gpt-4o-mini" in profile["models"]
        first = min(r.time_s for r in normal(2, 1) if r.resource == TABLES[0])
        assert profile["resources"][TABLES[0]]["first_seen_s"] == first

        refused = cli.invoke(app, ["profile", "agent-a", "--pin", "--url", url], env=env)
        assert refused.exit_code != 0  # a pin needs a reason
        reviewed = tmp_path / "reviewed.json"
        reviewed.write_text(json.dumps({**profile, "tools": ["search", "sql_query"]}))  # the reviewer drops one
        pinned = cli.invoke(app, ["profile", "agent-a", "--pin-file", str(reviewed), "--reason", "Q4 review",
                                  "--url", url], env=env)
        assert pinned.exit_code == 0 and "2 tools" in pinned.output

        late = T0 + 3600
        drifting = [make_record(agent_id="agent-a", tool_name="http_get", end_ns=int((late + i) * 1e9))
                    for i in range(3)] + [make_record(agent_id="agent-a", tool_name="sql_query",
                                                      resource="db:pg:hr.payroll", end_ns=int((late + 5) * 1e9))]
        service.call(lambda: service.deliver(drifting))
        after = json.loads(cli.invoke(app, ["profile", "agent-a", "--json", "--url", url], env=env).output)
        assert after["pinned"]["pinned_by"] == "human:admin"
        assert after["drift_from_pinned"]["tools"] == ["http_get"]
    finally:
        service.stop()
    entries = [e for _, e in read_entries(tmp_path / "audit.jsonl")]
    drift = [(e.data["kind"], e.data["subject"]) for e in entries if e.actor == "detector:pinned_profile"]
    assert drift == [("drift_tool", "http_get"), ("drift_resource", "db:pg:hr.payroll")]  # each once
    assert any(e.kind == "config_change" and e.reason == "pinned profile: Q4 review" for e in entries)
    restarted = EmbeddedService(Settings(port=0, trust_span_time=True, state_dir=tmp_path, audit_fsync="never"))
    assert restarted.pipeline.pinned["agent-a"].tools == frozenset({"search", "sql_query"})
