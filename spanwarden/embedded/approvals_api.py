"""Approvals over HTTP: agents' guards open requests and wait on them; on-call people list and answer them.

- `GET  /v1/approvals/rules?agent=A[&environment=E]` → the tool patterns that need approval for that agent
- `POST /v1/approvals` `{agent, tool, arguments_digest}` → `{required, id, status}` (audited when opened;
  bound to the agent's token, `agent_auth.py`)
- `GET  /v1/approvals/{id}?wait=S` → the request, as soon as it is answered or expires (long-poll)
- `GET  /v1/approvals` → pending requests (viewer)
- `POST /v1/approvals/{id}/answer` `{approve, reason}` → approve or deny (oncall; audited with the person)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.embedded.agent_auth import acting_agent
from spanwarden.embedded.commands_api import Audited, authorize
from spanwarden.enforcers.approvals import PENDING, ApprovalBook, ApprovalRequest, needs_approval, rules_view
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.roles import TokenBook


class ApprovalsApi:
    def __init__(self, pipeline: Audited, tokens: TokenBook, gate: IngestGate,
                 clock: Callable[[], float] = time.time, max_wait_s: float = 25.0) -> None:
        self.pipeline = pipeline
        self.tokens = tokens
        self.gate = gate
        self.clock = clock
        self.max_wait_s = max_wait_s
        self.book = ApprovalBook()
        self._answered: dict[str, asyncio.Event] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/approvals/rules", self.rules)
        app.router.add_post("/v1/approvals", self.open)
        app.router.add_get("/v1/approvals", self.pending)
        app.router.add_get("/v1/approvals/{id}", self.wait)
        app.router.add_post("/v1/approvals/{id}/answer", self.answer)

    def _environment(self, agent: str, stated: str) -> str | None:
        ref = self.pipeline.agents.get(agent)
        return ref.environment if ref is not None else (stated or None)

    def _required(self, agent: str, tool: str, stated_env: str) -> bool:
        rules = self.pipeline.policy.approvals
        env = self._environment(agent, stated_env)
        if env is None:  # an agent the service has not heard from: the rules apply
            return needs_approval(rules.tools, (), tool, "")
        return needs_approval(rules.tools, rules.environments, tool, env)

    async def rules(self, request: web.Request) -> web.Response:
        rules = self.pipeline.policy.approvals
        env = self._environment(request.query.get("agent", ""), request.query.get("environment", ""))
        access = self.pipeline.policy.access_requests
        return web.json_response({**rules_view(rules.tools, rules.environments, rules.timeout_s, env),
                                  "access": {"hold": access.hold, "timeout_s": access.timeout_s}})

    async def open(self, request: web.Request) -> web.Response:
        try:
            body: dict[str, Any] = await request.json()
            claimed, tool = str(body["agent"]), str(body["tool"])
            digest = str(body.get("arguments_digest", ""))[:64]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with agent and tool ({exc})"},
                                     status=400)
        agent = acting_agent(request, self.gate, claimed)
        if isinstance(agent, web.Response):
            return agent
        if not self._required(agent, tool, str(body.get("environment", ""))):
            return web.json_response({"required": False})
        now = self.clock()
        opened, new = self.book.open(agent, tool, digest, now, self.pipeline.policy.approvals.timeout_s)
        if new:
            self._audit(opened, f"agent:{agent}", f"{agent} asks to call {tool}", now)
        return web.json_response({"required": True, **opened.to_dict()})

    async def wait(self, request: web.Request) -> web.Response:
        request_id = request.match_info["id"]
        try:
            wait = min(float(request.query.get("wait", "0")), self.max_wait_s)
        except ValueError:
            return web.json_response({"code": 400, "message": "wait must be a number"}, status=400)
        deadline = asyncio.get_running_loop().time() + max(wait, 0.0)
        while True:
            found = self._current(request_id)
            if found is None:
                return web.json_response({"code": 404, "message": f"no request {request_id}"}, status=404)
            remaining = min(deadline - asyncio.get_running_loop().time(), found.expires_s - self.clock())
            if found.status != PENDING or remaining <= 0:
                return web.json_response(found.to_dict())
            event = self._answered.setdefault(request_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    async def pending(self, request: web.Request) -> web.Response:
        allowed = authorize(request, self.tokens, "status", self.pipeline, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        return web.json_response({"pending": [r.to_dict() for r in self.book.pending(self.clock())]})

    async def answer(self, request: web.Request) -> web.Response:
        request_id = request.match_info["id"]
        try:
            body: dict[str, Any] = await request.json()
            approve, reason = bool(body["approve"]), str(body.get("reason", ""))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with approve ({exc})"}, status=400)
        found = self._current(request_id)
        agent = found.agent_id if found else ""
        allowed = authorize(request, self.tokens, "approve" if approve else "deny", self.pipeline, self.clock(),
                            agent)
        if isinstance(allowed, web.Response):
            return allowed
        try:
            answered = self.book.answer(request_id, approve, allowed.actor, reason, self.clock())
        except KeyError as exc:
            return web.json_response({"code": 404, "message": str(exc)}, status=404)
        except ValueError as exc:
            return web.json_response({"code": 409, "message": str(exc)}, status=409)
        self._audit(answered, allowed.actor, reason or answered.status, self.clock())
        event = self._answered.pop(request_id, None)
        if event is not None:
            event.set()
        return web.json_response(answered.to_dict())

    def _current(self, request_id: str) -> ApprovalRequest | None:
        found, expired_now = self.book.get(request_id, self.clock())
        if found is not None and expired_now:
            self._audit(found, "service", "approval request expired unanswered", self.clock())
        return found

    def _audit(self, request: ApprovalRequest, actor: str, reason: str, now: float) -> None:
        ref = self.pipeline.agents.get(request.agent_id, AgentRef(id=request.agent_id))
        self.pipeline.audit.append("approval", ref, actor, reason, now, (), self.pipeline.policy.version,
                                   request.to_dict())
