"""`spanwarden top`: the fleet on a terminal, for installs without Datadog — agents, spend rate, latest
anomaly score and the decision in force, refreshed from the service's status."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from spanwarden.cli.client import STATE, URL, get
from spanwarden.cli.tables import Column, fitted
from spanwarden.enforcers.actors import readable

STYLE = {"halt": "bold red", "require_approval": "magenta", "throttle": "yellow", "warn": "cyan", "allow": ""}
COLUMNS = (Column("agent", name=True), Column("team", drop=7), Column("env", drop=5),
           Column("$/min", drop=1, right=True), Column("$ last hour", drop=6, right=True),
           Column("latest finding", drop=4), Column("score", drop=2, right=True), Column("decision"),
           Column("by", drop=3))
RANK = {"halt": 0, "require_approval": 1, "throttle": 2, "warn": 3, "allow": 4}


def _decisions(agent: dict[str, Any]) -> str:
    """The agent-wide action, then each scoped one ("halt tool:purge_*")."""
    d = agent["decision"]
    parts = [d["action"] + (f" {d['scope']}" if d.get("scope") else "")]
    parts += [f"{s['action']} {s['scope']}" for s in agent.get("scoped", [])]
    return "\n".join(parts)


def fleet_table(agents: list[dict[str, Any]], limit: int, width: int = 200) -> Table:
    """Agents under a decision first, then by anomaly score and spend rate."""
    def order(a: dict[str, Any]) -> tuple[int, float, float]:
        finding = a.get("last_finding") or {}
        ranks = [RANK.get(a["decision"]["action"], 5), *(RANK.get(s["action"], 5) for s in a.get("scoped", []))]
        return (min(ranks), -float(finding.get("score", 0.0)),
                -float(a.get("spend_usd_per_min", 0.0)))

    spend = sum(float(a.get("spend_usd_per_min", 0.0)) for a in agents)
    shown = sorted(agents, key=order)[:limit]
    rows = []
    for a in shown:
        d, f = a["decision"], a.get("last_finding")
        rows.append((a["agent"], a.get("team", ""), a.get("environment", ""),
                     f"{a.get('spend_usd_per_min', 0.0):,.3f}", f"{a.get('spend_usd_last_hour', 0.0):,.2f}",
                     f"{f['detector']}/{f['kind']} ({f['severity']})" if f else "",
                     f"{f['score']:.1f}" if f else "", _decisions(a), readable(d["decided_by"])))
    return fitted(COLUMNS, rows, width, title=f"spanwarden — {len(agents)} agents, ${spend:,.2f}/min",
                  styles=[STYLE.get(a["decision"]["action"], "") for a in shown], more=" (widen the terminal)")


def top(url: str = URL, state_dir: Path = STATE,
        interval: float = typer.Option(2.0, min=0.2, help="seconds between refreshes"),
        limit: int = typer.Option(40, min=1, help="rows shown"),
        once: bool = typer.Option(False, "--once", help="print the table once and exit")) -> None:
    """Live view of the fleet: decisions in force first, then the most anomalous and the biggest spenders
    (viewer role or above). Ctrl-C quits."""
    console = Console()
    if once:
        console.print(fleet_table(get(url, "/v1/status", state_dir)["agents"], limit, console.width))
        return
    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                live.update(fleet_table(get(url, "/v1/status", state_dir)["agents"], limit, console.width),
                            refresh=True)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
