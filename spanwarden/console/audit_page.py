"""Audit: whether the chain verifies, `explain` of an agent at a moment (scoped decisions included), the
newest entries, and an export (JSON lines or CSV) — the same functions `spanwarden audit` runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from spanwarden.console.render import secure
from spanwarden.console.view import View
from spanwarden.enforcers.audit_log import verify
from spanwarden.enforcers.audit_query import AuditReadError, entries, explain, export

RECENT = 50


def parse_time(text: str) -> float | None:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise); "" is none."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)  # ValueError: said on the page
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _read(path: Path, key: bytes | None, agent: str, at: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"chain": verify(path, key), "explained": None, "recent": [], "read_error": ""}
    try:
        if agent:
            out["explained"] = explain(path, agent, at).to_dict()
        out["recent"] = list(entries(path, agent=agent or None))[::-1][:RECENT]
    except AuditReadError as exc:
        out["read_error"] = str(exc)
    return out


async def audit(view: View) -> web.StreamResponse:
    agent, at_text = view.request.query.get("agent", "").strip(), view.request.query.get("at", "")
    try:
        at = parse_time(at_text)
    except ValueError:
        return view.page("audit.html", status=400, agent=agent, at=at_text, chain=None, explained=None,
                         recent=[], read_error=f"{at_text!r} is neither epoch seconds nor an ISO 8601 time")
    read = await asyncio.to_thread(_read, view.console.state_dir / "audit.jsonl", view.console.audit_key, agent,
                                   at)
    return view.page("audit.html", agent=agent, at=at_text, **read)


async def download(view: View) -> web.StreamResponse:
    query = view.request.query
    fmt = query.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        return view.refused(400, "export as jsonl or csv")
    try:
        since, until = parse_time(query.get("since", "")), parse_time(query.get("until", ""))
    except ValueError:
        return view.refused(400, "since and until are epoch seconds or ISO 8601 times")
    path, agent = view.console.state_dir / "audit.jsonl", query.get("agent", "").strip() or None
    try:
        text = await asyncio.to_thread(lambda: export(entries(path, since, until, agent), fmt))
    except AuditReadError as exc:
        return view.refused(500, str(exc))
    response = web.Response(text=text, content_type="text/csv" if fmt == "csv" else "application/x-ndjson",
                            headers={"Content-Disposition": f'attachment; filename="spanwarden-audit.{fmt}"'})
    secure(response)
    return response
