"""`spanwarden audit explain` and `spanwarden incident` of an agent the audit log never names: exit 3 (unknown
agent) with one line, not an epoch-dated "allowed by default"; an agent it names is still explained (exit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanwarden.cli import app
from spanwarden.cli.errors import UNKNOWN_AGENT, run
from spanwarden.enforcers.audit_log import AgentRef, AuditLog


def one_kill(state_dir: Path) -> None:
    """An audit log that names one agent: billing-bot, killed by a human."""
    log = AuditLog(state_dir / "audit.jsonl", fsync="never")
    log.append("command", AgentRef(id="billing-bot"), "human:omar", "kill: looping", 1_800_000_000.0, (), "v1",
               {"command": "kill", "outcome": "done"})
    log.close()


def test_explain_of_an_agent_without_audit_entries_is_unknown(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    one_kill(tmp_path)
    assert run(app, ["audit", "explain", "nobody", "--state-dir", str(tmp_path)]) == UNKNOWN_AGENT
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines() == [
        f"spanwarden: no audit entries for agent 'nobody' in {tmp_path / 'audit.jsonl'}"]
    assert run(app, ["audit", "explain", "nobody", "--json", "--state-dir", str(tmp_path)]) == UNKNOWN_AGENT
    capsys.readouterr()
    assert run(app, ["audit", "explain", "billing-bot", "--state-dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "billing-bot" in shown and "1970" not in shown


def test_an_incident_report_of_an_agent_the_log_never_names_is_unknown(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    one_kill(tmp_path)
    assert run(app, ["incident", "nobody", "--state-dir", str(tmp_path)]) == UNKNOWN_AGENT
    assert "anything about 'nobody'" in capsys.readouterr().err
    # Named, but no anomaly to start from: a usage problem (give --since), not an unknown agent.
    assert run(app, ["incident", "billing-bot", "--state-dir", str(tmp_path)]) == 2
