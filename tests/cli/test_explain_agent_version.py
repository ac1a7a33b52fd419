"""`audit explain` says what the audit entry records of the agent — its own version among it, which comes from
its spans' service.version (or gen_ai.agent.version) and which `instrument(agent_id=...)` never sets — and says
plainly what was not reported, instead of "version ?"; the policy version in force is printed as recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanwarden.enforcers.audit_log import AgentRef, AuditLog
from tests.cli.live import spanwarden

T0 = 1_800_000_000.0


def _decision(state_dir: Path, ref: AgentRef, policy_version: str) -> None:
    log = AuditLog(state_dir / "audit.jsonl", fsync="never")
    log.append("decision", ref, "policy:cost-runaway@v7", "spend 40x its usual", T0, ("ab" * 16 + "/" + "cd" * 8,),
               policy_version, {"action": "halt", "decided_by": "policy:cost-runaway@v7", "agent_id": ref.id,
                                "version": 1, "findings": []})
    log.close()


def test_what_the_agent_never_reported_is_said_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _decision(tmp_path, AgentRef("billing-bot", owner="alice@example.com", environment="prod"), "v7")
    code, out = spanwarden(capsys, "audit", "explain", "billing-bot", "--state-dir", str(tmp_path))
    assert code == 0, out
    agent_line = next(line for line in out.splitlines() if line.startswith("  agent:"))
    assert agent_line == ("  agent:       owner alice@example.com, environment prod; not reported: team, "
                          "agent version (service.version)")
    assert "?" not in out
    assert "  decided by:  policy:cost-runaway@v7; policy v7 in force" in out


def test_the_agent_s_version_and_a_missing_policy_version(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _decision(tmp_path, AgentRef("billing-bot", "alice@example.com", "finance", "prod", "1.4.2"), "")
    code, out = spanwarden(capsys, "audit", "explain", "billing-bot", "--state-dir", str(tmp_path))
    assert code == 0, out
    assert "  agent:       owner alice@example.com, team finance, environment prod, agent version 1.4.2\n" in out
    assert "  decided by:  policy:cost-runaway@v7; the entry records no policy version" in out
