"""Approvals and access requests: what waits for a human first (what the agent wanted, why it was held, its
owner), then what was answered lately; approve — an access request for a while or for good — or deny,
through the same answer routes the CLI uses. `/approvals/{id}` and `/access-requests/{id}` are the pages
notifications link to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from spanwarden.console.fleet_page import pending
from spanwarden.console.view import View
from spanwarden.enforcers.audit_log import AuditEntry
from spanwarden.enforcers.audit_query import AuditReadError, entries

RECENT = 30
DURATIONS = (("900", "15 minutes"), ("3600", "1 hour"), ("28800", "8 hours"), ("86400", "1 day"),
             ("604800", "7 days"), ("always", "always"))


def _answered(state_dir: Path) -> list[AuditEntry]:
    try:
        return [e for e in entries(state_dir / "audit.jsonl") if e.kind == "approval"
                and e.data.get("status") not in (None, "pending")][::-1][:RECENT]
    except AuditReadError:
        return []


def _request_id(entry: AuditEntry) -> str:
    return str(entry.data.get("request_id") or entry.data.get("id") or "")


async def _show(view: View, focus: str = "") -> web.StreamResponse:
    waiting = await pending(view)
    status = await view.api("GET", "/v1/status")
    owners = {a["agent"]: a for a in status.body.get("agents", [])} if status.ok else {}
    answered = await asyncio.to_thread(_answered, view.console.state_dir)
    rows: list[dict[str, Any]] = []
    for r in waiting:
        ref = owners.get(r["agent_id"], {})
        what = f"call {r['tool']}" if r["kind"] == "approval" else f"access {r['resource']}"
        why = (r.get("reason") or "its profile does not include this resource") if r["kind"] == "access" \
            else f"the policy holds calls of {r['tool']} for a human"
        rows.append({**r, "what": what, "why": why, "owner": ref.get("owner", ""), "team": ref.get("team", ""),
                     "environment": ref.get("environment", ""), "focus": r["id"] == focus,
                     "opened": r.get("created_s") or r.get("opened_s")})
    gone = None
    if focus and not any(r["id"] == focus for r in rows):
        gone = next((e for e in answered if _request_id(e) == focus), None)
    return view.page("approvals.html", rows=rows, answered=answered, focus=focus, gone=gone,
                     durations=DURATIONS, request_id=_request_id)


async def approvals(view: View) -> web.StreamResponse:
    return await _show(view)


async def one(view: View) -> web.StreamResponse:
    return await _show(view, view.request.match_info["id"])


def answer_body(kind: str, form: dict[str, str]) -> dict[str, Any] | str:
    """The answer route's JSON from the form, or why the form cannot be sent."""
    approve = form.get("decision") == "approve"
    if form.get("decision") not in ("approve", "deny"):
        return "choose approve or deny"
    body: dict[str, Any] = {"approve": approve, "reason": form.get("reason", "").strip()}
    if kind == "access" and approve:
        chosen = form.get("for", "")
        if chosen == "always":
            body["always"] = True
        else:
            try:
                body["for_s"] = float(chosen)
            except ValueError:
                return "say for how long (or always)"
    return body


async def _answer(view: View, kind: str) -> web.StreamResponse:
    request_id = view.request.match_info["id"]
    body = answer_body(kind, view.form)
    base = "/v1/approvals" if kind == "approval" else "/v1/access-requests"
    if isinstance(body, str):
        view.flash(f"{request_id} not answered: {body}")
        return view.back(f"{'/approvals' if kind == 'approval' else '/access-requests'}/{quote(request_id)}")
    answer = await view.api("POST", f"{base}/{quote(request_id, safe='')}/answer", json=body)
    if answer.status == 403:
        return view.refused(403, answer.message)
    if not answer.ok:
        view.flash(f"{request_id} not answered: {answer.message}")
    else:
        request = answer.body.get("request", answer.body)
        until = " for good" if body.get("always") else (f" for {body['for_s'] / 3600:g} h" if "for_s" in body
                                                         else "")
        view.flash(f"{request_id} {request.get('status')}{until} by {view.session.principal.name}")
    return view.back("/approvals")


async def answer_approval(view: View) -> web.StreamResponse:
    return await _answer(view, "approval")


async def answer_access(view: View) -> web.StreamResponse:
    return await _answer(view, "access")
