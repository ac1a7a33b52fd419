"""The demo's live terminal view and its closing summary (rich)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from spanwarden.cli.tables import Column, fitted
from spanwarden.demo.sim_agent import SimAgent
from spanwarden.embedded.service import EmbeddedService

STYLE = {"allow": "", "warn": "yellow", "throttle": "magenta", "halt": "bold red"}
# Names whole, as the CLI's tables keep them (spanwarden/cli/tables.py): in a narrow terminal the least useful
# columns are left out (the caption names them) before an agent's name is cut.
LIVE_COLUMNS = (Column("agent", name=True), Column("env", drop=3), Column("model", drop=4),
                Column("$/min", right=True), Column("$ total", right=True, drop=2), Column("refused", right=True,
                                                                                          drop=5),
                Column("latest finding", drop=1), Column("decision"))
SUMMARY_COLUMNS = (Column("agent", name=True), Column("incident"), Column("detected"), Column("action"),
                   Column("s to action", right=True, drop=1), Column("$ after onset", right=True))


class LiveView:
    """Redraws at most `fps` times a second: agents, spend rate, latest score and decision."""

    def __init__(self, console: Console, fps: float = 4.0) -> None:
        self.console = console
        self.live = Live(console=console, auto_refresh=False, transient=False)
        self.interval = 1.0 / fps
        self._drawn = 0.0
        self._spend: dict[str, list[tuple[float, float]]] = {}

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)  # type: ignore[arg-type]

    def on_tick(self, t: float, agents: list[SimAgent], service: EmbeddedService) -> None:
        for agent in agents:
            history = self._spend.setdefault(agent.profile.agent_id, [])
            history.append((t, agent.spend))
            while history and history[0][0] < t - 300:
                history.pop(0)
        now = time.monotonic()
        if now - self._drawn < self.interval:
            return
        self._drawn = now
        status = {s["agent"]: s for s in service.call(service.status)}
        self.live.update(self._table(t, agents, status), refresh=True)

    def _table(self, t: float, agents: list[SimAgent], status: dict[str, Any]) -> Table:
        rows, styles = [], []
        for agent in agents:
            p = agent.profile
            history = self._spend.get(p.agent_id) or [(t, agent.spend)]
            span_s = max(t - history[0][0], 1.0)
            rate = (agent.spend - history[0][1]) / span_s * 60
            s = status.get(p.agent_id, {})
            f = s.get("last_finding")
            action = (s.get("decision") or {}).get("action", "allow")
            latest = f"{f['detector']} {f['score']:.1f} {f['severity']}" if f else ""
            rows.append((p.agent_id, p.environment, p.model, f"{rate:.2f}", f"{agent.spend:.2f}",
                         str(agent.refused), latest, action))
            styles.append(STYLE.get(action, ""))
        table = fitted(LIVE_COLUMNS, rows, self.console.width,
                       title=f"spanwarden demo — simulated {int(t // 3600)}h{int(t % 3600 // 60):02d}m",
                       styles=styles)
        table.caption = "spend rate over the last 5 simulated minutes" + (f"; {table.caption}" if table.caption
                                                                          else "")
        return table


def print_summary(console: Console, summary: dict[str, Any], wall_s: float, spans: int) -> None:
    rows = [(i["agent"], i["kind"], "yes" if i["detected"] else "NO", str(i["action"]),
             "-" if i["seconds_to_action"] is None else f"{i['seconds_to_action']:.1f}",
             f"{i['usd_after_onset']:.2f}")
            for i in summary["incidents"]]
    table = fitted(SUMMARY_COLUMNS, rows, console.width, title="Injected incidents",
                   styles=["" if i["detected"] else "red" for i in summary["incidents"]])
    console.print(table)
    false = summary["false_actions"]
    console.print(f"{summary['agents']} agents, {spans:,} spans over OTLP/HTTP in {wall_s:.1f}s wall time.")
    console.print("Actions against normal agents: " + (", ".join(f"{f['agent']} ({f['action']})" for f in false)
                                                      if false else "none"))
    console.print(f"Audit log: {summary['audit_entries']} entries, "
                  + ("chain verified" if summary["audit_verified"] else "[red]VERIFY FAILED[/]"))
