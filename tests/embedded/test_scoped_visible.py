"""Decisions for some of an agent's calls (a tool, a model, a resource) are visible beside the agent-wide
one: in `/v1/status`, `spanwarden status`, `spanwarden top`."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings


def test_a_tool_scoped_kill_shows_in_status_and_top(tmp_path):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5, json={
            "command": "kill", "agent": "agent-s", "tool": "purge_*", "reason": "bad purges"}).raise_for_status()
        status = requests.get(f"{url}/v1/status", headers={"Authorization": "Bearer t"}, timeout=5).json()
        mine = [a for a in status["agents"] if a["agent"] == "agent-s"]  # listed although it never reported
        assert mine and mine[0]["decision"]["action"] == "allow"
        assert [(d["action"], d["scope"]) for d in mine[0]["scoped"]] == [("halt", "tool:purge_*")]
        env = {**os.environ, "SPANWARDEN_TOKEN": "t", "SPANWARDEN_URL": url, "COLUMNS": "250"}
        for args in (["status"], ["top", "--once"]):
            done = subprocess.run([sys.executable, "-m", "spanwarden.cli", *args], capture_output=True, text=True,
                                  timeout=60, env=env)
            assert done.returncode == 0, done.stderr
            assert "tool:purge_*" in done.stdout, done.stdout
    finally:
        service.stop()
