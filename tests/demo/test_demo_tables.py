"""The demo's live view and its closing summary in an 80-column terminal keep every agent's name whole (the
CLI's tables do: spanwarden/cli/tables.py), cut nothing with an ellipsis, and name the columns left out."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from rich.cells import cell_len
from rich.console import Console

from spanwarden.demo.view import LiveView, print_summary

NAMES = ["customer-support-triage-eu-west", "finance-reconciliation-nightly", "research-summariser"]


def _console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False, color_system=None), out


def _checked(out: str, width: int) -> list[str]:
    lines = out.splitlines()
    assert max(cell_len(line) for line in lines) <= width, out
    assert "…" not in out, out
    for name in NAMES:
        assert any(name in line for line in lines), (name, out)
    return lines


def test_summary_keeps_names_whole_at_80_columns() -> None:
    summary: dict[str, Any] = {
        "incidents": [{"agent": n, "kind": "runaway_loop_with_a_long_name", "detected": i != 1,
                       "action": "halt" if i != 1 else "none", "seconds_to_action": 12.5 if i != 1 else None,
                       "usd_after_onset": 3.25} for i, n in enumerate(NAMES)],
        "false_actions": [], "agents": 3, "audit_entries": 12, "audit_verified": True}
    console, out = _console(80)
    print_summary(console, summary, 12.0, 1000)
    lines = _checked(out.getvalue(), 80)
    assert any("NO" in line and NAMES[1] in line for line in lines), out.getvalue()


class _Status:
    def call(self, fn: Any) -> Any:
        return fn()

    def status(self) -> list[dict[str, Any]]:
        return [{"agent": NAMES[0], "decision": {"action": "halt"},
                 "last_finding": {"detector": "cost_velocity", "score": 9.1, "severity": "critical"}}]


def test_live_view_keeps_names_whole_and_says_what_it_left_out() -> None:
    agents = [SimpleNamespace(profile=SimpleNamespace(agent_id=n, environment="production",
                                                      model="claude-sonnet-4-5-20250929"), spend=12.5, refused=3)
              for n in NAMES]
    console, out = _console(80)
    view = LiveView(console)
    table = view._table(3600.0, agents, {s["agent"]: s for s in _Status().status()})  # type: ignore[arg-type]
    console.print(table)
    text = out.getvalue()
    lines = _checked(text, 80)
    assert "not shown at this width:" in text, text
    assert any("halt" in line and NAMES[0] in line for line in lines), text

    wide, wide_out = _console(250)
    wide.print(LiveView(wide)._table(3600.0, agents, {}))  # type: ignore[arg-type]
    assert "not shown at this width" not in wide_out.getvalue()
    assert "claude-sonnet-4-5-20250929" in wide_out.getvalue()
