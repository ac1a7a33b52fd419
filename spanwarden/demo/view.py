"""The demo's live terminal view and its closing summary (rich)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from spanwarden.demo.sim_agent import SimAgent
from spanwarden.embedded.service import EmbeddedService

STYLE = {"allow": "green", "warn": "yellow", "throttle": "magenta", "halt": "bold red"}


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
        table = Table(title=f"spanwarden demo — simulated {int(t // 3600)}h{int(t % 3600 // 60):02d}m",
                      caption="spend rate over the last 5 simulated minutes")
        for column in ("agent", "env", "model", "$/min", "$ total", "refused", "latest finding", "decision"):
            table.add_column(column)
        for agent in agents:
            p = agent.profile
            history = self._spend.get(p.agent_id) or [(t, agent.spend)]
            span_s = max(t - history[0][0], 1.0)
            rate = (agent.spend - history[0][1]) / span_s * 60
            s = status.get(p.agent_id, {})
            finding = s.get("last_finding")
            action = (s.get("decision") or {}).get("action", "allow")
            table.add_row(
                p.agent_id, p.environment, p.model, f"{rate:.2f}", f"{agent.spend:.2f}", str(agent.refused),
                f"{finding['detector']} {finding['score']:.1f} {finding['severity']}" if finding else "",
                f"[{STYLE.get(action, '')}]{action}[/]",
            )
        return table


def print_summary(console: Console, summary: dict[str, Any], wall_s: float, spans: int) -> None:
    table = Table(title="Injected incidents")
    for column in ("agent", "incident", "detected", "action", "s to action", "$ after onset"):
        table.add_column(column)
    for i in summary["incidents"]:
        table.add_row(i["agent"], i["kind"], "yes" if i["detected"] else "[red]NO[/]", str(i["action"]),
                      "-" if i["seconds_to_action"] is None else f"{i['seconds_to_action']:.1f}",
                      f"{i['usd_after_onset']:.2f}")
    console.print(table)
    false = summary["false_actions"]
    console.print(f"{summary['agents']} agents, {spans:,} spans over OTLP/HTTP in {wall_s:.1f}s wall time.")
    console.print("Actions against normal agents: " + (", ".join(f"{f['agent']} ({f['action']})" for f in false)
                                                      if false else "none"))
    console.print(f"Audit log: {summary['audit_entries']} entries, "
                  + ("chain verified" if summary["audit_verified"] else "[red]VERIFY FAILED[/]"))
