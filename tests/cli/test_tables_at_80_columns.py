"""`status` and `top` in an 80-column terminal: every agent's name whole on one line (not "customer-supp…"),
nothing cut off with an ellipsis, no line wider than the terminal, and the columns left out to make room named
under the table; in a wide terminal every column is there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len

from spanwarden.cli import app
from spanwarden.cli.errors import run
from tests.cli.live import as_user, report, serve, spanwarden

AGENTS = {  # long names, as fleets name agents
    "customer-support-triage-eu-west": ("dana.okafor@example.com", "customer-support", "production"),
    "finance-reconciliation-nightly": ("farid.haddad@example.com", "finance-operations", "staging"),
    "research-summariser": ("grace@example.com", "research", "dev"),
}


HEADERS = {"status": ("owner", "env", "$ last hour", "for some calls"), "top": ("team", "env", "$ last hour")}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("fleet")
    service, url = serve(state)
    try:
        for agent, (owner, team, env) in AGENTS.items():
            report(url, agent, owner, team, env)
        with pytest.MonkeyPatch.context() as mp:
            as_user(mp, url, state)
            assert run(app, ["kill", "finance-reconciliation-nightly", "--tool", "delete_*", "--reason", "scoped",
                             "--actor", "root"]) == 0
        yield url, state
    finally:
        service.stop()


@pytest.mark.parametrize("command", [("status",), ("top", "--once")])
def test_readable_at_80_columns(fleet: tuple[str, Path], command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    url, state = fleet
    as_user(monkeypatch, url, state, columns=80)
    code, out = spanwarden(capsys, *command)
    assert code == 0, out
    lines = out.splitlines()
    assert max(cell_len(line) for line in lines) <= 80, out
    assert "…" not in out, out
    for agent in AGENTS:
        assert any(agent in line for line in lines), (agent, out)
    assert "halt tool:delete_*" in out, out
    left_out = next(line for line in lines if line.startswith("not shown at this width: "))
    assert all(h in out.replace(left_out, "") or h in left_out for h in HEADERS[command[0]]), out  # named

    as_user(monkeypatch, url, state, columns=250)
    code, wide = spanwarden(capsys, *command)
    header = next(line for line in wide.splitlines() if "┃ agent " in line)
    assert code == 0 and "not shown at this width" not in wide and "…" not in wide, wide
    assert all(h in header for h in HEADERS[command[0]]), wide


def test_a_table_too_wide_leaves_out_the_least_useful_columns_and_says_so() -> None:
    from rich.console import Console

    from spanwarden.cli.tables import Column, fitted

    columns = (Column("request"), Column("agent", name=True), Column("tool"), Column("operation", drop=1),
               Column("waiting since", drop=3), Column("expires", drop=2), Column("empty", drop=9))
    rows = [("ap-3f9c2a71", "customer-support-triage-eu-west", "delete_records", "DELETE FROM crm.customers",
             "2026-12-02 07:52:51", "2026-12-02 08:52:51", "")]
    console = Console(width=80, record=True)
    console.print(fitted(columns, rows, 80))
    out = console.export_text()
    assert max(cell_len(line) for line in out.splitlines()) <= 80 and "…" not in out, out
    assert any("customer-support-triage-eu-west" in line for line in out.splitlines()), out
    assert "not shown at this width: waiting since, expires" in out and "empty" not in out, out  # empty: unsaid
    assert "delete_records" in out and "DELETE FROM" in out, out
