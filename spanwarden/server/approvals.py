"""Approvals over HTTP: agents' guards open requests and wait on them; on-call people list and answer them.

- `GET  /v1/approvals/rules?agent=A[&environment=E]` → the tool patterns that need approval for that agent
- `POST /v1/approvals` `{agent, tool, arguments_digest[, effect, resource, summary, targets, egress]}` →
  `{required, id, status}` (audited when opened; an operation held by its effect carries its summary, never a
  literal; `egress`: a write to an external host, answered with the host's access request, `kind: access`;
  bound to the agent's token, `auth.acting_agent`); `{agent, tool: "", model}`: a first call to a model, answered
  with the model's access request when its price calls for one (`spanwarden.model_gate`), `kind: access`
- `GET  /v1/approvals/{id}?wait=S` → the request, as soon as it is answered or expires (long-poll)
- `GET  /v1/approvals` → pending requests (viewer)
- `POST /v1/approvals/{id}/answer` `{approve, reason}` → approve or deny (oncall; audited with the person)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.enforcers.access_requests import AccessRequest, egress_view
from spanwarden.enforcers.approvals import (
    PENDING,
    ApprovalBook,
    ApprovalRequest,
    effect_rules,
    required,
    rules_view,
)
from spanwarden.enforcers.audit_log import AgentRef, AuditChainBroken, AuditLog, AuditUnwritable
from spanwarden.server.auth import acting_agent, principal
from spanwarden.server.runtime import Audited

log = logging.getLogger(__name__)

# (agent, resource, summary, now_s) -> the host's access request, or None when it is in the agent's profile
# (a runtime that asks the agent's worker answers with a coroutine: Kafka)
Egress = Callable[[str, str, str, float], AccessRequest | None | Awaitable[AccessRequest | None]]
# (agent, model, now_s) -> the model's access request, or None when the call may go
ModelAsk = Callable[[str, str, float], AccessRequest | None | Awaitable[AccessRequest | None]]


class ApprovalsApi:
    """Tool approvals need only the policy and the audit sink: both runtimes hold them here, alike."""

    def __init__(self, audited: Audited, gate: IngestGate, clock: Callable[[], float] = time.time,
                 max_wait_s: float = 25.0, egress: Egress | None = None,
                 internal_domains: Sequence[str] = (), models: ModelAsk | None = None) -> None:
        self.pipeline = audited
        self.egress = egress  # the runtime's egress_request (on Kafka: asks the agent's worker); None: not held
        self.models = models  # the runtime's model_request; None where first calls to models are not held
        self.internal_domains = tuple(internal_domains)
        self.gate = gate
        self.clock = clock
        self.max_wait_s = max_wait_s
        self.book = ApprovalBook()
        self._answered: dict[str, asyncio.Event] = {}

    def _environment(self, agent: str, stated: str) -> str | None:
        ref = self.pipeline.agents.get(agent)
        return ref.environment if ref is not None else (stated or None)

    def _required(self, agent: str, tool: str, stated_env: str, body: dict[str, Any]) -> bool:
        """By the tool's name or by what the call does; an agent the service has not heard from (no
        environment): the rules apply."""
        return required(self.pipeline.policy.approvals, self._environment(agent, stated_env), tool,
                        str(body.get("effect", "")), str(body.get("resource", "")),
                        [str(t) for t in (body.get("targets") or ())][:16])

    async def rules(self, request: web.Request) -> web.Response:
        rules = self.pipeline.policy.approvals
        env = self._environment(request.query.get("agent", ""), request.query.get("environment", ""))
        access = self.pipeline.policy.access_requests
        return web.json_response({**rules_view(rules.tools, rules.environments, rules.timeout_s, env,
                                               effect_rules(rules)),
                                  "access": {"hold": access.hold, "timeout_s": access.timeout_s},
                                  "egress": egress_view(access, env, self.internal_domains,
                                                        self.egress is not None),
                                  "models": {"applies": bool(self.models is not None and access.models
                                                             and env is not None and env in access.environments)}})

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
        if body.get("egress"):
            return await self._egress(agent, str(body.get("environment", "")), body)
        if body.get("model"):
            return await self._model(agent, str(body["model"])[:256])
        if not self._required(agent, tool, str(body.get("environment", "")), body):
            return web.json_response({"required": False})
        now = self.clock()
        effect, resource = str(body.get("effect", ""))[:16], str(body.get("resource", ""))[:256]
        summary = str(body.get("summary", ""))[:256]
        opened, new = self.book.open(agent, tool, digest or summary[:64], now,
                                     self.pipeline.policy.approvals.timeout_s, effect, resource, summary)
        if new:
            what = f"{summary} on {resource}" if effect else f"to call {tool}"
            self._audit(opened, f"agent:{agent}", f"{agent} asks {what}", now)
            await self._durable()
        return web.json_response({"required": True, **opened.to_dict()})

    async def _egress(self, agent: str, stated_env: str, body: dict[str, Any]) -> web.Response:
        """A write to an external host: not held where egress is not (another environment, or a runtime
        without it); else the host's access request unless the host is in the agent's profile."""
        env = self._environment(agent, stated_env)
        resource = str(body.get("resource", ""))[:256]
        if (self.egress is None or not resource.startswith("http:")
                or not egress_view(self.pipeline.policy.access_requests, env, ())["applies"]):
            return web.json_response({"required": False})
        found = self.egress(agent, resource, str(body.get("summary", ""))[:256], self.clock())
        if inspect.isawaitable(found):  # the agent's worker judges it (Kafka)
            found = await found
        if found is None:
            return web.json_response({"required": False})
        return web.json_response({"required": True, "kind": "access", **found.to_dict()})

    async def _model(self, agent: str, model: str) -> web.Response:
        """A first call to a model: its access request when the runtime holds such calls and the model's price
        calls for one (the pipeline knows the agent's environment and prices), else not required."""
        found = self.models(agent, model, self.clock()) if self.models is not None else None
        if inspect.isawaitable(found):  # the agent's worker judges it (Kafka)
            found = await found
        if found is None:
            return web.json_response({"required": False})
        return web.json_response({"required": True, "kind": "access", **found.to_dict()})

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
        return web.json_response({"pending": [r.to_dict() for r in self.book.pending(self.clock())]})

    async def answer(self, request: web.Request) -> web.Response:
        request_id = request.match_info["id"]
        try:
            body: dict[str, Any] = await request.json()
            approve, reason = bool(body["approve"]), str(body.get("reason", ""))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"expected JSON with approve ({exc})"}, status=400)
        allowed = principal(request)
        self._current(request_id)  # an expiry falling due now is audited before the answer is refused
        try:
            answered = self.book.answer(request_id, approve, allowed.actor, reason, self.clock())
        except KeyError as exc:
            return web.json_response({"code": 404, "message": str(exc)}, status=404)
        except ValueError as exc:
            return web.json_response({"code": 409, "message": str(exc)}, status=409)
        self._audit(answered, allowed.actor, reason or answered.status, self.clock())
        await self._durable()
        event = self._answered.pop(request_id, None)
        if event is not None:
            event.set()
        return web.json_response(answered.to_dict())

    def _current(self, request_id: str) -> ApprovalRequest | None:
        found, expired_now = self.book.get(request_id, self.clock())
        if found is not None and expired_now:
            try:
                self._audit(found, "service", "approval request expired unanswered", self.clock())
            except (AuditChainBroken, AuditUnwritable) as exc:  # a guard's wait (a GET) still gets its answer
                log.error("approval request %s expired unanswered; not audited: %s", request_id, exc)
        return found

    def _audit(self, request: ApprovalRequest, actor: str, reason: str, now: float) -> None:
        """Queue the request's entry for the audit writer without holding the loop while the disk syncs
        (`_durable` awaits it before an answer that depends on it goes out)."""
        ref = self.pipeline.agents.get(request.agent_id, AgentRef(id=request.agent_id))
        sink = self.pipeline.sink
        if isinstance(sink, AuditLog):
            with sink.deferred():
                sink.append("approval", ref, actor, reason, now, (), self.pipeline.policy.version,
                            request.to_dict())
        else:
            sink.append("approval", ref, actor, reason, now, (), self.pipeline.policy.version, request.to_dict())

    async def _durable(self) -> None:
        sink = self.pipeline.sink
        if isinstance(sink, AuditLog):
            await sink.durable()
