"""`spanwarden serve` on a port something else holds exits with one line and leaves the state directory as it
found it: a directory it had to create is gone again, and a lock file it had to create is not left behind
naming a process that is no longer there; the next serve on that directory is not told it is in use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from spanwarden.server.state_lock import StateDirLock


def _serve(port: int, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spanwarden.cli", "serve", "--port", str(port), "--state-dir",
                           str(state_dir)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SPANWARDEN_ADMIN_TOKEN": "t"})


def test_a_busy_port_leaves_the_state_dir_as_it_was(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fresh, used = tmp_path / "fresh", tmp_path / "used"
        used.mkdir()
        (used / "audit.jsonl").write_text("")
        StateDirLock(used).acquire("serve").release()  # a serve ran here before and stopped
        before = (used / "lock").read_text()
        for state_dir in (fresh, used):
            done = _serve(port, state_dir)
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip().splitlines()[-1] == (
                f"spanwarden: port {port} on 127.0.0.1 is already in use: stop what holds it, or run with --port "
                "/ SPANWARDEN_PORT")
    assert not fresh.exists()
    assert sorted(p.name for p in used.iterdir()) == ["audit.jsonl", "lock"]
    assert (used / "lock").read_text() in ("", before)  # it does not name the serve that gave up
    StateDirLock(used).acquire("serve").release()  # nobody holds it
