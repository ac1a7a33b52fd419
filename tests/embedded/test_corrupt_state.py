"""An unreadable state.db (truncated, overwritten) never stops the service: it is set aside for inspection,
named in one log line and in the start-up audit entry, and the decisions in force come back from the audit
log — a halted agent stays halted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests

from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import read_entries
from spanwarden.enforcers.decision import Action
from spanwarden.settings import Settings


def _service(state_dir: Path) -> tuple[EmbeddedService, str]:
    service = EmbeddedService(Settings(port=0, state_dir=state_dir, admin_token="t", audit_fsync="never"))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_an_unreadable_snapshot_is_set_aside_and_decisions_come_back(tmp_path: Path, damage: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    service, url = _service(tmp_path)
    answer = requests.post(f"{url}/v1/commands", json={"command": "kill", "agent": "billing-bot", "new": True,
                                                       "reason": "test"},
                           headers={"Authorization": "Bearer t"}, timeout=10)
    assert answer.status_code == 200, answer.text
    service.call(service.snapshots.now)
    service.stop()
    db = tmp_path / "state.db"
    size = db.stat().st_size
    assert size > 0
    if damage == "truncate":
        with open(db, "r+b") as f:
            f.truncate(size // 3 or 1)
    else:
        db.write_bytes(b"\x13not a database\x00" * 400)

    with caplog.at_level(logging.ERROR):
        service, url = _service(tmp_path)
    try:
        assert any("is unreadable" in m and "set aside" in m for m in caplog.messages), caplog.messages
        assert list(tmp_path.glob("state.db.corrupt-*")), sorted(p.name for p in tmp_path.iterdir())
        assert service.call(lambda: service.pipeline.decision("billing-bot")).action is Action.HALT
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        service.stop()
    started = [e for _, e in read_entries(tmp_path / "audit.jsonl")
               if not isinstance(e, Exception) and e.kind == "service" and e.reason == "service started"]
    assert str(started[-1].data["unreadable_state_set_aside"]).startswith("state.db.corrupt-")
