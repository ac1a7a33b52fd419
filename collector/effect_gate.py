"""Holding an operation by what it does, at its span's start, whatever the tool is called: a destructive
statement (or any operation the policy's `approvals.effects` name) waits for a human; in environments that
hold egress, a write to an external host outside the agent's profile waits for an access request's answer.

Database instrumentations built on DB-API (sqlite3, psycopg2, mysql, … through
`opentelemetry-instrumentation-dbapi`) and SQLAlchemy's set the statement just *after* the span starts and
just before the query runs, so the gate also watches a client span's first attributes: a hold (or a refusal)
there happens before the statement is sent. HTTP client instrumentations (requests, httpx, urllib3) give the
method and URL when the span starts. An operation whose span carries its effect only when it ends cannot be
held; the service reports those (`write_volume`, kind `unheld_write`).

The request carries the statement's summary (`DELETE FROM customers without WHERE`), never a literal. The
span is stamped `spanwarden.approval` with the request id it went out under (`denied:<id>` when refused),
which the incident report reads back to name the approver.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, get_current_span

from spanwarden.collector import effects
from spanwarden.collector.halted import AccessPending, AgentHalted
from spanwarden.collector.span_record import LLM_OPERATIONS
from spanwarden.collector.span_resource import resource_of
from spanwarden.enforcers.approvals import effect_needs_approval, is_external

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Span

    from spanwarden.collector.guard import Guard

log = logging.getLogger(__name__)
APPROVAL = "spanwarden.approval"
REFUSED = "denied:"
# Attributes that say what an operation does; a client span without them at start is watched until it has one.
WATCHED = frozenset({"db.query.text", "db.statement", "http.request.method", "http.method", "spanwarden.effect",
                     "messaging.operation.type", "messaging.operation", "file.path", "db.query.summary",
                     "db.operation.name", "db.operation"})
_CHANGES = (effects.WRITE, effects.DESTRUCTIVE)
ALLOWED_FOR_S = 300.0
MAX_ALLOWED = 4096


class EffectGate:
    """The guard's view of effects. `allowed_hosts`: external hosts the service let this agent write to, until
    when (asked again after ALLOWED_FOR_S: an approval for a while runs out, the profile forgets)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.allowed_hosts: dict[str, float] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, attributes: Mapping[str, Any], tool: str = "",
                 parent_context: Context | None = None) -> None:
        if not WATCHED.isdisjoint(attributes):
            self.judge(span, attributes, tool, parent_context)
        elif span.kind is SpanKind.CLIENT and attributes.get("gen_ai.operation.name") not in LLM_OPERATIONS:
            self._watch(span, tool, parent_context)  # an LLM call's own span never carries a statement

    def _watch(self, span: Span, tool: str, parent_context: Context | None) -> None:
        """Judge the span when its instrumentation sets the statement (or method), before the call runs."""
        set_many, set_one = span.set_attributes, span.set_attribute
        tool = tool or _parent_tool(parent_context)  # now: by then the span itself is the current one

        def judged(keys: Any) -> bool:
            if not any(key in WATCHED for key in keys):
                return False
            del span.set_attributes, span.set_attribute  # back to the class's own: judged once
            self.judge(span, span.attributes or {}, tool, parent_context)
            return True

        def many(attributes: Mapping[str, Any]) -> None:
            set_many(attributes)
            judged(attributes)

        def one(key: str, value: Any) -> None:
            set_one(key, value)
            judged((key,))

        span.set_attributes = many  # type: ignore[method-assign]
        span.set_attribute = one  # type: ignore[method-assign]

    def judge(self, span: Span, attributes: Mapping[str, Any], tool: str = "",
              parent_context: Context | None = None) -> None:
        """Hold the operation if the policy says so; raise AgentHalted (the call is not made) if refused."""
        attributes = dict(attributes)  # one copy: the SDK's mapping is several times slower to read
        effect = effects.of_span(attributes, span.name)
        if effect.kind not in _CHANGES:
            return
        watcher = self.guard.watcher
        if watcher is None:
            return
        tool = tool or _parent_tool(parent_context)  # the tool the statement runs under (`run_sql`)
        resource = resource_of(attributes)
        if effect_needs_approval(watcher.approval_effects, effect.kind, resource, effect.targets):
            self._approve(span, effect, resource, tool)
        host = resource[5:] if resource.startswith("http:") else ""
        if (host and watcher.egress_internal is not None
                and self.allowed_hosts.get(host, 0.0) <= self.guard.clock()
                and host != urlsplit(watcher.base).hostname and is_external(host, watcher.egress_internal)):
            self._egress(span, effect, resource, host, tool)

    def _approve(self, span: Span, effect: effects.Effect, resource: str, tool: str) -> None:
        state = self.guard.ask(effect.summary, {
            "tool": tool, "arguments_digest": "", "effect": effect.kind, "resource": resource,
            "summary": effect.summary, "targets": list(effect.targets)[:16]})
        if state is None:
            return
        if state["status"] == "approved":
            span.set_attribute(APPROVAL, str(state["id"]))
            return
        span.set_attribute(APPROVAL, f"{REFUSED}{state['id']}")
        self.guard.refused += 1
        raise AgentHalted(self.guard.agent_id, f"{effect.summary} {state['status']} (request {state['id']}): "
                          f"{state.get('reason', '')}", state.get("decided_by") or "service", -1)

    def _egress(self, span: Span, effect: effects.Effect, resource: str, host: str, tool: str) -> None:
        state = self.guard.ask(f"writing to {host}", {
            "tool": tool, "arguments_digest": "", "effect": effect.kind, "resource": resource,
            "summary": effect.summary, "targets": [host], "egress": True})
        if state is None:  # in the profile already (or the runtime does not hold egress)
            with self._lock:
                self._allow(host)
            return
        pending = AccessPending(self.guard.agent_id, resource, str(state["id"]),
                                "policy:access-requests", -1)
        watcher = self.guard.watcher
        try:
            if watcher is None or watcher.access_hold != "wait":
                raise pending
            self.guard.await_access(pending)
        except AgentHalted:
            span.set_attribute(APPROVAL, f"{REFUSED}{state['id']}")
            self.guard.refused += 1
            raise
        span.set_attribute(APPROVAL, str(state["id"]))
        with self._lock:
            self._allow(host)

    def _allow(self, host: str) -> None:
        if len(self.allowed_hosts) >= MAX_ALLOWED:
            self.allowed_hosts.clear()
        self.allowed_hosts[host] = self.guard.clock() + ALLOWED_FOR_S


def _parent_tool(parent_context: Context | None) -> str:
    parent = get_current_span(parent_context)
    attributes = getattr(parent, "attributes", None) or {}
    return str(attributes.get("gen_ai.tool.name") or "")
