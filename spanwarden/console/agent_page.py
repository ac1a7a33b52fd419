"""Agent: spend over time by model, findings and decisions on one timeline, the learned profile (first-seen
times, who approved what), the incident report since the last anomaly, and — for oncall — kill, throttle and
resume, agent-wide or scoped to a tool, model or resource (sent to `POST /v1/commands` as the person)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from spanwarden.console import charts, history
from spanwarden.console.fleet_page import pending
from spanwarden.console.view import View
from spanwarden.embedded import incident_report
from spanwarden.enforcers.audit_query import AuditReadError, entries

TIMELINE_KINDS = ("finding", "decision", "command", "approval", "config_change")
TIMELINE_MAX = 150


def _read(state_dir: Path, agent_id: str) -> dict[str, Any]:
    spend = history.by_model(history.tail(state_dir / "activity", agent_id))
    out: dict[str, Any] = {"chart": charts.line_chart(spend.series, spend.start_s, spend.step_s),
                           "timeline": [], "approved": [], "audit_error": "", "incident": None}
    try:
        mine = [e for e in entries(state_dir / "audit.jsonl", agent=agent_id) if e.kind in TIMELINE_KINDS]
    except AuditReadError as exc:
        out["audit_error"] = str(exc)
        return out
    out["timeline"] = mine[::-1][:TIMELINE_MAX]
    out["approved"] = [e for e in mine if e.kind == "approval" and e.data.get("status") == "approved"]
    try:
        out["incident"] = incident_report.build(state_dir, agent_id)
    except LookupError:
        pass
    return out


async def agent(view: View) -> web.StreamResponse:
    agent_id = view.request.match_info["agent"]
    status = await view.api("GET", "/v1/status")
    if not status.ok:
        return view.refused(status.status, status.message)
    row = next((a for a in status.body.get("agents", []) if a["agent"] == agent_id), None)
    if row is None:
        return view.refused(404, f"No agent {agent_id!r} has reported to this service.")
    profile = await view.api("GET", f"/v1/profile/{quote(agent_id, safe='')}")
    read = await asyncio.to_thread(_read, view.console.state_dir, agent_id)
    waiting = [r for r in await pending(view) if r["agent_id"] == agent_id]
    return view.page("agent.html", agent=row, profile=profile.body if profile.ok else None,
                     profile_error="" if profile.ok else profile.message, waiting=waiting, **read)


def command_body(agent_id: str, form: dict[str, str]) -> dict[str, Any]:
    """The `POST /v1/commands` body for the agent page's form (empty fields left out)."""
    body: dict[str, Any] = {"command": form.get("command", ""), "agent": agent_id, "require_known": True,
                            "reason": form.get("reason", "").strip()}
    for key in ("tool", "model", "resource"):
        if form.get(key, "").strip():
            body[key] = form[key].strip()
    if form.get("command") == "throttle" and form.get("rate_per_s", "").strip():
        body["rate_per_s"] = form["rate_per_s"].strip()
    return body


async def command(view: View) -> web.StreamResponse:
    agent_id = view.request.match_info["agent"]
    body = command_body(agent_id, view.form)
    if "rate_per_s" in body:
        try:
            body["rate_per_s"] = float(body["rate_per_s"])
        except ValueError:
            view.flash(f"throttle refused: {body['rate_per_s']!r} is not a number of calls per second")
            return view.back(f"/agents/{quote(agent_id, safe='')}")
    answer = await view.api("POST", "/v1/commands", json=body)
    if not answer.ok:
        if answer.status == 403:
            return view.refused(403, answer.message)
        view.flash(f"{body['command']} refused: {answer.message}")
    else:
        scope = f" [{answer.body['scope']}]" if answer.body.get("scope") else ""
        view.flash(f"{body['command']}: {agent_id}{scope} is now {answer.body['action']} "
                   f"(decision v{answer.body['version']} by {answer.body['decided_by']})")
    return view.back(f"/agents/{quote(agent_id, safe='')}")
