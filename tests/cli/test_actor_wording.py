"""A command given by one person with another's token (root, with the service's admin token) is recorded as
`human:admin for root`; everywhere the CLI prints an actor it reads as that one person and the token they used
— the kill's answer, status, top, audit explain and the incident report — never as "admin for root"."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanwarden.enforcers.actors import readable, recorded
from tests.cli.live import as_user, report, serve, spanwarden

ONE_PERSON = "human:root (using token 'admin')"


def test_the_person_comes_first_and_the_token_after() -> None:
    assert recorded("admin", "root") == "admin for root" and recorded("alice", "alice") == "alice"
    assert readable("human:" + recorded("admin", "root")) == ONE_PERSON
    for as_recorded in ("human:alice", "policy:cost-runaway@2026-12-01.1", "detector:cost_velocity", "service",
                        "default", "human:admin for ", ""):
        assert readable(as_recorded) == as_recorded


def test_every_view_names_one_person_and_the_token_they_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    service, url = serve(tmp_path)
    as_user(monkeypatch, url, tmp_path, columns=200)
    try:
        report(url, "billing-bot", "alice@example.com", "finance", "prod")
        shown = {
            "kill": spanwarden(capsys, "kill", "billing-bot", "--reason", "looping", "--actor", "root"),
            "status": spanwarden(capsys, "status"),
            "top": spanwarden(capsys, "top", "--once"),
        }
    finally:
        service.stop()
    shown["explain"] = spanwarden(capsys, "audit", "explain", "billing-bot")
    shown["incident"] = spanwarden(capsys, "incident", "billing-bot", "--since", "0")
    for view, (code, out) in shown.items():
        assert code == 0, (view, out)
        assert ONE_PERSON in out and " for root" not in out, (view, out)
    assert shown["kill"][1].strip() == f"billing-bot: halt (decision v1) by {ONE_PERSON}"
    assert "  human:       [" in shown["explain"][1] and f"{ONE_PERSON}: looping" in shown["explain"][1]
    assert f"Humans who acted: {ONE_PERSON}" in shown["incident"][1]
