"""Access requests over HTTP: on-call people list and answer them; agents' guards wait on them.

- `GET  /v1/access-requests` → pending requests (viewer)
- `GET  /v1/access-requests/{id}?wait=S` → the request, as soon as it is answered (long-poll; for guards)
- `POST /v1/access-requests/{id}/answer` `{approve, reason, for_s | always}` → approve (for a while or for
  good) or deny (oncall; audited with the person)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from spanwarden.enforcers.access_requests import PENDING, AccessBook
from spanwarden.enforcers.decision import Decision
from spanwarden.server.auth import principal
from spanwarden.server.commands import CommandNotApplied

# (request id, approve, actor, reason, now_s, for_s) -> the decision the answer made
Answer = Callable[[str, bool, str, str, float, float | None], Awaitable[Decision]]


class AccessApi:
    """`book` holds the requests (the pipeline's own, or in the Kafka gateway a view rebuilt from the audit
    trail); `answer` applies an answer (in-process, or through the agent's worker)."""

    def __init__(self, book: AccessBook, answer: Answer, clock: Callable[[], float] = time.time,
                 max_wait_s: float = 25.0) -> None:
        self.book = book
        self.apply = answer
        self.clock = clock
        self.max_wait_s = max_wait_s
        self._answered: dict[str, asyncio.Event] = {}

    def notify(self, request_id: str) -> None:
        """Wake the guards waiting on this request (its status changed)."""
        event = self._answered.pop(request_id, None)
        if event is not None:
            event.set()

    async def pending(self, request: web.Request) -> web.Response:
        return web.json_response({"pending": [r.to_dict() for r in self.book.pending()]})

    async def wait(self, request: web.Request) -> web.Response:
        request_id = request.match_info["id"]
        found = self.book.requests.get(request_id)
        if found is None:
            return web.json_response({"code": 404, "message": f"no access request {request_id!r}"}, status=404)
        try:
            wait_s = min(max(float(request.query.get("wait", "0")), 0.0), self.max_wait_s)
        except ValueError:
            wait_s = 0.0
        if found.status == PENDING and wait_s > 0:
            event = self._answered.setdefault(request_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), wait_s)
            except TimeoutError:
                pass
        return web.json_response(self.book.requests[request_id].to_dict())

    async def answer(self, request: web.Request) -> web.Response:
        request_id = request.match_info["id"]
        try:
            body: dict[str, Any] = await request.json()
            approve, reason = bool(body["approve"]), str(body.get("reason", "")).strip()
            for_s = None if body.get("always") or body.get("for_s") is None else float(body["for_s"])
            if for_s is not None and not for_s > 0:
                raise ValueError("for_s must be > 0")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with approve, and for_s or always "
                                      f"({exc})"}, status=400)
        found = self.book.requests.get(request_id)
        allowed = principal(request)
        if approve and not body.get("always") and for_s is None:
            return web.json_response({"code": 400, "message": "an approval says for how long: for_s, or always"},
                                     status=400)
        if found is None:
            return web.json_response({"code": 404, "message": f"no access request {request_id!r}"}, status=404)
        if found.status != PENDING:
            return web.json_response({"code": 409, "message": f"access request {request_id} was already "
                                      f"{found.status} by {found.answered_by}"}, status=409)
        try:
            decision = await self.apply(request_id, approve, allowed.name,
                                        reason or ("approved" if approve else "denied"), self.clock(), for_s)
        except KeyError as exc:
            return web.json_response({"code": 404, "message": str(exc)}, status=404)
        except ValueError as exc:
            return web.json_response({"code": 409, "message": str(exc)}, status=409)
        except CommandNotApplied as exc:
            return web.json_response({"code": 504, "message": str(exc)}, status=504)
        self.notify(request_id)
        answered = {**found.to_dict(), "status": "approved" if approve else "denied", "answered_by": allowed.actor,
                    "until_s": decision.issued_s + for_s if approve and for_s is not None else None}
        return web.json_response({"request": answered, "decision": decision.to_dict()})
