"""The incident report's sections read alike: one with nothing in it says "- none" (resources, writes, tool
calls, models, errors, decisions), rather than a bare heading or an empty table."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanwarden.enforcers.audit_log import AgentRef, AuditLog
from tests.cli.live import spanwarden

SECTIONS = ("Resources touched", "Writes and destructive operations", "Tool calls", "Models", "Errors",
            "Decisions and who acted")


def _sections(markdown: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for block in markdown.split("\n## ")[1:]:
        heading, _, body = block.partition("\n")
        out[heading] = [line for line in body.splitlines() if line.strip() and not line.startswith("Humans")]
    return out


def test_an_empty_section_says_none_like_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")  # a command, but no span ever received
    log.append("command", AgentRef("billing-bot"), "human:omar", "looping", 1_800_000_000.0, (), "v1",
               {"command": "halt"})
    log.close()
    code, out = spanwarden(capsys, "incident", "billing-bot", "--since", "0", "--state-dir", str(tmp_path))
    assert code == 0, out
    sections = _sections(out)
    assert tuple(sections) == SECTIONS
    for heading in SECTIONS[:-1]:
        assert sections[heading] == ["- none"], (heading, out)
    assert sections["Decisions and who acted"][0].endswith("command `halt` by human:omar: looping")
