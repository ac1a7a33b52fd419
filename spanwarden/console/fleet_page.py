"""Fleet: every agent with the decision in force (scoped ones beside it), spend in the last hour with a
sparkline, calls, error rate and latest finding; filtered by name (part of the agent id, any case), team
and environment, its rows re-fetched by
htmx every few seconds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from spanwarden.console import charts, history
from spanwarden.console.view import View

MAX_ROWS = 200  # beyond this, narrow by name, team or environment
POLL_S = 5
RANK = {"halt": 0, "throttle": 1, "require_approval": 2, "warn": 3, "allow": 4}
SPARK_TAIL_BYTES = 128 << 10


def _windows(directory: Path, agents: list[str], end_s: float | None) -> dict[str, history.Window]:
    tails = {a: history.tail(directory, a, SPARK_TAIL_BYTES) for a in agents}
    if end_s is None:
        end_s = max((t[-1]["t"] for t in tails.values() if t), default=0.0)
    return {a: history.window(items, end_s) for a, items in tails.items()}


async def pending(view: View) -> list[dict[str, Any]]:
    """Tool approvals and access requests waiting for a human, oldest first."""
    out: list[dict[str, Any]] = []
    for path, kind in (("/v1/approvals", "approval"), ("/v1/access-requests", "access")):
        answer = await view.api("GET", path)
        if answer.ok:
            out += [{**r, "kind": kind} for r in answer.body.get("pending", [])]
    return sorted(out, key=lambda r: r.get("created_s") or r.get("opened_s") or 0.0)


async def fleet_context(view: View) -> dict[str, Any]:
    query = view.request.query
    team, environment = query.get("team", ""), query.get("environment", "")
    name = query.get("name", "").strip()
    status = await view.api("GET", "/v1/status")
    if not status.ok:
        return {"error": status.message, "rows": [], "teams": [], "environments": [], "team": team,
                "environment": environment, "total": 0, "waiting": [], "poll_s": POLL_S, "query": "", "name": name}
    agents: list[dict[str, Any]] = status.body.get("agents", [])
    chosen = [a for a in agents if (not team or a.get("team") == team)
              and (not environment or a.get("environment") == environment)
              and (not name or name.casefold() in str(a["agent"]).casefold())]
    chosen.sort(key=lambda a: (RANK.get(a["decision"]["action"], 5), -(a.get("spend_usd_last_hour") or 0.0),
                               a["agent"]))
    shown = chosen[:MAX_ROWS]
    seen = [a["last_seen_s"] for a in agents if a.get("last_seen_s")]
    windows = await asyncio.to_thread(_windows, view.console.state_dir / "activity", [a["agent"] for a in shown],
                                      max(seen) if seen else None)
    waiting = await pending(view)
    waits = {r["agent_id"] for r in waiting}
    rows = []
    for a in shown:
        w = windows[a["agent"]]
        rows.append({**a, "spend": a.get("spend_usd_last_hour", w.usd), "calls": w.calls,
                     "error_rate": w.error_rate, "spark": charts.sparkline(w.spend) if w.calls else "",
                     "waiting": a["agent"] in waits, "scoped": a.get("scoped", [])})
    return {"error": "", "rows": rows, "total": len(chosen), "team": team, "environment": environment,
            "name": name,
            "teams": sorted({a["team"] for a in agents if a.get("team")}),
            "environments": sorted({a["environment"] for a in agents if a.get("environment")}),
            "waiting": waiting, "poll_s": POLL_S, "query": view.request.query_string}


async def fleet(view: View) -> web.StreamResponse:
    return view.page("fleet.html", **await fleet_context(view))


async def rows(view: View) -> web.StreamResponse:
    return view.fragment("fleet_rows.html", **await fleet_context(view))
