"""After an unreadable state.db is set aside, the agents whose decisions come back from the audit log are
shown with the owner, team and environment their spans last gave (the activity journal's who-files) — not
blank until they report again — and `kill --team` finds them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.live import as_user, report, serve, spanwarden


def test_owner_and_environment_survive_a_lost_state_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    service, url = serve(tmp_path)
    try:
        as_user(monkeypatch, url, tmp_path)
        report(url, "billing-bot", "alice@example.com", "finance", "prod")
        assert spanwarden(capsys, "kill", "billing-bot", "--reason", "looping")[0] == 0
    finally:
        service.stop()
    (tmp_path / "state.db").write_bytes(b"not a database" * 100)

    service, url = serve(tmp_path)  # nothing reports again
    try:
        as_user(monkeypatch, url, tmp_path, columns=200)
        assert list(tmp_path.glob("state.db.corrupt-*")), "the unreadable state.db is set aside"
        code, out = spanwarden(capsys, "status", "--json")
        assert code == 0, out
        (agent,) = json.loads(out)
        assert (agent["agent"], agent["decision"]["action"]) == ("billing-bot", "halt")  # from the audit log
        assert (agent["owner"], agent["team"], agent["environment"]) == ("alice@example.com", "finance", "prod")
        code, table = spanwarden(capsys, "status")
        assert code == 0 and "alice@example.com" in table and "prod" in table, table
        code, out = spanwarden(capsys, "resume", "--team", "finance", "--reason", "fixed")
        assert code == 0 and out.startswith("billing-bot: allow"), out
    finally:
        service.stop()
