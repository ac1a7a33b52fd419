"""The console's pure parts: bucketing the activity journal, the SVG charts, sessions and their expiry, and
the form-to-API translations."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanwarden.console import charts, history
from spanwarden.console.agent_page import command_body
from spanwarden.console.approvals_page import answer_body
from spanwarden.console.sessions import Sessions, SignInRefused, csrf_ok
from spanwarden.console.view import safe_next
from spanwarden.embedded.activity_journal import ActivityJournal
from spanwarden.enforcers.roles import Role, TokenBook, add_token


def test_window_buckets_spend_calls_and_errors_of_the_last_hour() -> None:
    items = [{"t": 1000.0 + 300 * i, "usd": 0.5, "error": "E" if i % 4 == 0 else ""} for i in range(16)]
    w = history.window(items, end_s=1000.0 + 300 * 15, span_s=3600.0, buckets=12)
    assert w.calls == 13  # t from 600 s before the first bucket's start on: the first three are older
    assert w.spend[-1] == 1.0  # the last bucket ends at end_s, inclusive
    assert sum(w.spend) == pytest.approx(6.5) and w.usd == pytest.approx(6.5)
    assert w.error_rate == pytest.approx(3 / 13)
    assert history.window([], 0.0).error_rate is None


def test_by_model_keeps_the_top_models_and_sums_the_rest() -> None:
    items = [{"t": float(i), "usd": float(n + 1), "model": f"m{n}"} for i, n in enumerate(range(8))]
    series = history.by_model(items, buckets=4)
    assert set(series.series) == {"m7", "m6", "m5", "m4", "m3", "other"}
    assert sum(series.series["other"]) == pytest.approx(1 + 2 + 3)
    assert history.by_model([{"t": 1.0, "usd": 0.0, "model": "free"}]).series == {}


def test_tail_reads_the_newest_spans_of_the_real_journal(tmp_path: Path) -> None:
    from tests.detectors.traffic import normal

    journal = ActivityJournal(tmp_path)
    records = normal(1, 2, agent="a b/c")[:500]
    journal.append([r._replace(span_id=f"{i:04d}") for i, r in enumerate(records)])
    journal.close()
    newest = history.tail(tmp_path, "a b/c", max_bytes=4096)
    assert 0 < len(newest) < len(records) and newest[-1]["span"] == f"{len(records) - 1:04d}"
    assert [i["span"] for i in newest] == sorted(i["span"] for i in newest)  # oldest first, none torn
    assert history.tail(tmp_path, "never-reported") == []


def test_charts_are_svg_without_inline_style_and_escape_names() -> None:
    spark = str(charts.sparkline([0.0, 1.0, 0.5]))
    assert spark.startswith("<svg") and "polyline" in spark and "style=" not in spark
    chart = str(charts.line_chart({"<b>x</b>": [0.0, 2.0], "y": [1.0, 1.0]}, 1_800_000_000.0, 60.0))
    assert chart.count("<polyline") == 2 and "&lt;b&gt;x&lt;/b&gt;" in chart and "style=" not in chart
    assert "No priced spans" in str(charts.line_chart({}, 0.0, 0.0))


def test_sessions_sign_in_people_only_and_expire(tmp_path: Path) -> None:
    oncall = add_token(tmp_path / "tokens.yaml", "ana", Role.ONCALL)
    agent = add_token(tmp_path / "tokens.yaml", "bot", Role.AGENT, ("bot",))
    now = [0.0]
    sessions = Sessions(TokenBook.load(tmp_path / "tokens.yaml"), clock=lambda: now[0], lifetime_s=60,
                        max_sessions=2)
    session = sessions.sign_in(oncall)
    assert session.principal.name == "ana" and session.token == oncall and session.id != session.csrf
    with pytest.raises(SignInRefused, match="agent"):
        sessions.sign_in(agent)
    with pytest.raises(SignInRefused, match="not known"):
        sessions.sign_in("guess")
    assert sessions.get(session.id) is session
    now[0] = 61
    assert sessions.get(session.id) is None
    first, _, _ = (sessions.sign_in(oncall) for _ in range(3))
    assert sessions.get(first.id) is None  # the oldest signed out past max_sessions
    assert csrf_ok("abc", "abc") and not csrf_ok("abc", "abd") and not csrf_ok("abc", None)


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/agents/x?y=1") == "/agents/x?y=1"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil", "", None):
        assert safe_next(bad) == "/"


def test_forms_become_the_apis_bodies() -> None:
    body = command_body("a", {"command": "throttle", "rate_per_s": "2", "tool": " send_* ", "model": "",
                              "reason": " loop "})
    assert body == {"command": "throttle", "agent": "a", "require_known": True, "reason": "loop",
                    "tool": "send_*", "rate_per_s": "2"}
    assert "rate_per_s" not in command_body("a", {"command": "kill", "rate_per_s": "2"})
    assert answer_body("access", {"decision": "approve", "for": "3600"}) == {"approve": True, "reason": "",
                                                                            "for_s": 3600.0}
    assert answer_body("access", {"decision": "approve", "for": "always"})["always"] is True  # type: ignore[index]
    assert answer_body("access", {"decision": "approve", "for": "soon"}) == "say for how long (or always)"
    assert answer_body("approval", {"decision": "deny", "reason": "no"}) == {"approve": False, "reason": "no"}
    assert answer_body("approval", {}) == "choose approve or deny"
