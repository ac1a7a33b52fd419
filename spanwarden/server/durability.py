"""What changes state waits while it could not be audited — the same rule in both runtimes:

- the audit chain is broken (edited, truncated): mutating routes answer 503 until an admin acknowledges the
  break (`POST /v1/audit/acknowledge`, the one mutating route still open);
- the disk under the state dir is below `SPANWARDEN_MIN_FREE_DISK_BYTES`, or an append fails: 503 (OTLP
  exporters retry 503s);
- a background task that auditing or enforcing depends on has died (`Supervisor`): 503 naming it.

Decisions in force are still served. `/healthz` reports the same conditions."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from spanwarden.enforcers.audit_log import AuditChainBroken, AuditUnwritable, head_path, segments
from spanwarden.server import routes
from spanwarden.server.supervisor import Supervisor
from spanwarden.settings import Settings

log = logging.getLogger("spanwarden.durability")
ACKNOWLEDGE_PATH = "/v1/audit/acknowledge"


class BrokenAudit:
    """Stands in for the audit log while its chain is broken: every append is refused."""

    def __init__(self, message: str) -> None:
        self.message = message

    def append(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditChainBroken(self.message)

    def close(self) -> None:
        return None


def disk_short(settings: Settings) -> str | None:
    """Why the state dir has too little room to audit what a request would cause, or None."""
    free = shutil.disk_usage(settings.state_dir).free
    if free >= settings.min_free_disk_bytes:
        return None
    return (f"only {free:,} bytes free under {settings.state_dir} (below SPANWARDEN_MIN_FREE_DISK_BYTES="
            f"{settings.min_free_disk_bytes:,}): nothing is taken in that could not be audited")


def set_aside(path: Path, now_s: float) -> tuple[str, str]:
    """Move a broken chain (every segment, and its head) aside for forensics; its new name and the SHA-256 of
    its current segment."""
    aside = path.with_name(f"{path.name}.broken-{int(now_s)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
    for segment in [p for p in segments(path) if p != path]:  # audit.jsonl.000001 -> audit.jsonl.broken-T.000001
        os.replace(segment, segment.with_name(f"{aside.name}.{segment.name.rsplit('.', 1)[1]}"))
    if path.exists():
        os.replace(path, aside)
    if head_path(path).exists():
        os.replace(head_path(path), head_path(aside))
    return aside.name, digest


class Durability:
    """The broken-chain state of a runtime's audit log, and the middleware that applies the rules above."""

    def __init__(self, settings: Settings, supervisor: Supervisor) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.broken: str | None = None  # why the chain is broken, until acknowledged

    def problem(self) -> tuple[str, str] | None:
        """(status, message) of what stops intake now, or None: for the middleware and `/healthz`."""
        if self.broken is not None:
            return "audit_broken", f"{self.broken}; an admin must run `spanwarden audit acknowledge` first"
        dead = self.supervisor.problems(intake_only=True)
        if dead:
            named = ", ".join(f"{name} ({why})" for name, why in sorted(dead.items()))
            return "task_dead", (f"background task {named} died: spans and commands are refused until the "
                                 "service is restarted")
        short = disk_short(self.settings)
        if short is not None:
            return "disk_full", short
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: routes.Handler) -> web.StreamResponse:
        route = routes.of(request)
        if route is None or not route.mutates:
            return await handler(request)
        problem = self.problem()
        if problem is not None and not (problem[0] == "audit_broken" and request.path == ACKNOWLEDGE_PATH):
            return web.json_response({"code": 503, "message": problem[1]}, status=503)
        try:
            return await handler(request)
        except AuditUnwritable as exc:
            log.error("%s; spans and commands wait until it can be written", exc)
            return web.json_response({"code": 503, "message": f"{exc}; retry later"}, status=503)
