"""The state directory is private on both runtimes: taking it (the state-dir lock) makes it 0700, what an
older version left 0644 in it owner-only, and every file the service writes afterwards is 0600 (umask
077): audit log and head, state.db and its journals, activity files, tokens."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import make_record
from tests.server.conftest import RUNTIMES, start


def _modes(state_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(state_dir.stat().st_mode)}
    for path in state_dir.rglob("*"):
        if len(path.relative_to(state_dir).parts) <= 2 and not path.is_symlink():
            found[str(path.relative_to(state_dir))] = stat.S_IMODE(path.stat().st_mode)
    return found


@pytest.mark.parametrize("kind", RUNTIMES)
def test_state_files_are_owner_only(kind: str, tmp_path: Path) -> None:
    state_dir = tmp_path / kind
    (state_dir / "activity").mkdir(parents=True)
    os.chmod(state_dir, 0o755)
    os.chmod(state_dir / "activity", 0o755)
    for old in ("lock", "activity/left-by-an-older-version.jsonl"):
        (state_dir / old).write_text("{}\n")
        os.chmod(state_dir / old, 0o644)
    up, stop = start(kind, state_dir, ingest_auth="off")
    try:
        body = to_request([make_record(agent_id="billing-bot")]).SerializeToString()
        up.post("/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"})
        up.post("/v1/commands", up.tokens["oncall"], json={"command": "kill", "agent": "billing-bot",
                                                             "reason": "modes", "require_known": False})
        time.sleep(0.5)
    finally:
        stop()
    modes = _modes(state_dir)
    assert {"audit.jsonl", "tokens.yaml", "lock"} <= set(modes), sorted(modes)
    if kind == "embedded":
        assert "state.db" in modes and any(p.startswith("activity/billing-bot") for p in modes), sorted(modes)
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert not loose, loose
    assert modes["."] == 0o700 and modes["activity"] == 0o700
