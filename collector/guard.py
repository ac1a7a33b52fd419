"""The guard inside the agent: applies the agent's current decision before an LLM or tool call goes out.

`halt` raises `AgentHalted` (the one exception spanwarden ever raises in an agent), `throttle` waits on a
token bucket at the decided rate, `warn` only logs. A call to a tool the policy marks destructive waits
for a human's approval, and raises `AgentHalted` if it is denied or expires; so does an operation the
policy holds by what it does, whatever the tool is called, and in prod a write to an external host outside
the agent's profile (`effect_gate.py`).

Before the service has answered once, a call is held until it does, up to `first_contact_s` from the
guard's start (so a restarted halted agent's first call is refused, and a destructive tool waits for its
approval); past that, and when the control channel has been out of touch for longer than `out_of_touch_s`,
the guard follows its fail mode: "open" allows, "closed" refuses — and says which it is doing.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanwarden.collector import call_limits
from spanwarden.collector.call_limits import CallLimits
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.effect_gate import EffectGate
from spanwarden.collector.halted import AccessPending, AgentHalted
from spanwarden.collector.model_gate import ModelGate
from spanwarden.collector.normalize import resource_of
from spanwarden.collector.spend_lease import Reservation, SpendLease
from spanwarden.enforcers.decision import Action, Decision

log = logging.getLogger(__name__)
T = TypeVar("T")


class Guard:
    """Decides, per call, whether it may go out now. Thread-safe."""

    def __init__(self, agent_id: str, watcher: DecisionWatcher | None = None, fail_mode: str = "open",
                 out_of_touch_s: float = 30.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, first_contact_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if fail_mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', not {fail_mode!r}")
        self.agent_id = agent_id
        self.watcher = watcher
        self.fail_mode = fail_mode
        self.out_of_touch_s = out_of_touch_s
        self.clock = clock
        self.sleep = sleep
        self.monotonic = monotonic
        self.first_contact_by = monotonic() + first_contact_s  # calls are held until then for a first answer
        self._lock = threading.Lock()
        self._buckets: dict[str, list[float]] = {}  # scope -> [decision version, tokens, as of]
        self._warned_version = -1
        self._failing = False
        self._unheard_logged = False
        self.refused = 0
        self.throttled = 0

    def decision(self) -> Decision | None:
        return self.watcher.current if self.watcher else None

    def admit(self, tool: str = "", model: str = "", resource: str = "") -> float:
        """0 if the call (of `tool`, with `model`, when known) may go now, else the seconds to wait; raises
        AgentHalted. The agent-wide decision applies to every call, a scoped one to the calls it covers."""
        if self.watcher is None:
            return 0.0
        if not self.watcher.heard:
            self._await_first_contact()
        now = self.clock()
        # What the service last said holds first: a halt received before the channel was lost (or cut by
        # the agent itself) stays a halt in either fail mode; the fail mode decides only what is unknown.
        wait = self._apply(self.watcher.current, now)
        for decision in self.watcher.scoped:
            if decision.covers(tool, model, resource):
                wait = max(wait, self._apply(decision, now))
        self._out_of_touch()  # raises when the fail mode is closed
        return wait

    def _apply(self, decision: Decision, now: float) -> float:
        if not decision.in_force(now) or decision.action is Action.ALLOW:
            return 0.0
        if decision.action is Action.REQUIRE_APPROVAL and decision.command.startswith("access_request:"):
            self.refused += 1
            raise AccessPending(self.agent_id, _resource_of(decision.scope),
                                decision.command.partition(":")[2], decision.decided_by, decision.version)
        if decision.action in (Action.HALT, Action.REQUIRE_APPROVAL):
            self.refused += 1
            raise AgentHalted(self.agent_id, decision.reason, decision.decided_by, decision.version,
                              scope=decision.scope)
        if decision.action is Action.THROTTLE and decision.throttle_per_s:
            return self._take_token(decision, now)
        if decision.action is Action.WARN and self._warned_version != decision.version:
            self._warned_version = decision.version
            log.warning("spanwarden: agent %s warned by %s: %s", self.agent_id, decision.decided_by,
                        decision.reason)
        return 0.0

    def check(self, tool: str = "", model: str = "", resource: str = "") -> None:
        """Block until the call may go (throttle; an access request under the `wait` hold), or raise
        AgentHalted (AccessPending for a resource that waits for approval)."""
        while True:
            try:
                wait = self.admit(tool, model, resource)
            except AccessPending as pending:
                if self.watcher is None or self.watcher.access_hold != "wait":
                    raise
                self.await_access(pending)
                continue
            if wait <= 0:
                return
            self.sleep(wait)

    def await_access(self, pending: AccessPending, poll_s: float = 20.0) -> None:
        """Hold the call until the request is answered: approved, return (the call goes); denied, not
        answered within the policy's timeout, or not askable, raise."""
        watcher = self.watcher
        assert watcher is not None
        deadline = self.clock() + watcher.access_timeout_s
        log.warning("spanwarden: %s waits for approval of access to %s (request %s)", self.agent_id,
                    pending.resource, pending.request_id)
        while True:
            left = deadline - self.clock()
            if left <= 0:
                raise pending
            try:
                with suppress_instrumentation():
                    response = watcher.session.get(f"{watcher.base}/v1/access-requests/{pending.request_id}",
                                                   params={"wait": min(poll_s, left)},
                                                   timeout=min(poll_s, left) + 10)
                response.raise_for_status()
                state = response.json()
                status = str(state["status"])
            except (requests.RequestException, ValueError, KeyError) as exc:
                raise AgentHalted(self.agent_id, f"access request {pending.request_id} could not be followed "
                                  f"({exc})", "guard:access-unreachable", -1) from exc
            if status == "approved":
                return
            if status != "pending":
                who = str(state.get("answered_by") or "")
                why = str(state.get("answer_reason") or "")
                raise AgentHalted(self.agent_id, f"access to {pending.resource} {status}"
                                  f"{f' by {who}' if who else ''}{f': {why}' if why else ''} (request "
                                  f"{pending.request_id})", f"human:{who}" if who else pending.decided_by,
                                  pending.version, scope=pending.resource)

    def tool(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator for a tool function in code without spans: the guard applies before each call (halt,
        throttle, and approval when the policy marks the tool destructive)."""

        def wrap(function: Callable[..., T]) -> Callable[..., T]:
            tool_name = name or function.__name__

            @functools.wraps(function)
            def guarded(*args: Any, **kwargs: Any) -> T:
                self.check(tool_name)
                self.await_approval(tool_name, repr((args, sorted(kwargs.items()))))
                return function(*args, **kwargs)

            return guarded

        return wrap

    def await_approval(self, tool: str, arguments: str = "", poll_s: float = 20.0) -> None:
        """Hold a call to `tool` until a human approves it, if the policy says it needs approval; raise
        AgentHalted when it is denied, expires, or cannot be asked for (approvals always fail closed)."""
        watcher = self.watcher
        if watcher is None or not any(fnmatch.fnmatchcase(tool, p) for p in watcher.approval_tools):
            return
        digest = hashlib.blake2b(arguments.encode(), digest_size=8).hexdigest()
        state = self.ask(tool, {"tool": tool, "arguments_digest": digest}, poll_s)
        if state is not None and state["status"] != "approved":
            self.refused += 1
            raise AgentHalted(self.agent_id, f"call to {tool} {state['status']} (request {state['id']}): "
                              f"{state.get('reason', '')}", state.get("decided_by") or "service", -1)

    def ask(self, what: str, body: dict[str, Any], poll_s: float = 20.0) -> dict[str, Any] | None:
        """Open an approval request (`POST /v1/approvals` with `body`) and wait for its answer: the final
        state, or None when the service says no approval is needed. Raises AgentHalted when the service cannot
        be asked (approvals fail closed)."""
        watcher = self.watcher
        assert watcher is not None
        try:
            with suppress_instrumentation():  # the guard's own requests are not the agent's calls
                response = watcher.session.post(f"{watcher.base}/v1/approvals", timeout=10, json={
                    "agent": self.agent_id, "environment": watcher.environment, **body})
                response.raise_for_status()  # a service that cannot take requests must not read as "not required"
                opened: dict[str, Any] = response.json()
                if not opened.get("required"):
                    return None
                if opened.get("kind") == "access":
                    return opened  # an access request (egress): the caller waits on it as on any access request
                log.warning("spanwarden: %s waits for approval of %s (request %s)", self.agent_id, what,
                            opened["id"])
                state = opened
                while state["status"] == "pending":
                    state = watcher.session.get(f"{watcher.base}/v1/approvals/{opened['id']}",
                                                timeout=poll_s + 10, params={"wait": poll_s}).json()
            return state
        except (requests.RequestException, ValueError, KeyError) as exc:
            self.refused += 1
            raise AgentHalted(self.agent_id, f"approval for {what} could not be obtained ({exc})",
                              "guard:approval-unreachable", -1) from exc

    def _take_token(self, decision: Decision, now: float) -> float:
        """A token bucket per throttle decision (agent-wide and each scope have their own)."""
        rate = float(decision.throttle_per_s or 1.0)
        with self._lock:
            bucket = self._buckets.get(decision.scope)
            if bucket is None or bucket[0] != decision.version:
                bucket = self._buckets[decision.scope] = [decision.version, 1.0, now]
            _, tokens, since = bucket
            tokens = min(max(1.0, rate), tokens + (now - since) * rate)
            if tokens >= 1.0:
                bucket[1:] = [tokens - 1.0, now]
                return 0.0
            bucket[1:] = [tokens, now]
            self.throttled += 1
            return (1.0 - tokens) / rate

    def _await_first_contact(self) -> None:
        """Hold the call until the service has answered once, up to the guard's first-contact deadline; past
        it, the fail mode decides (closed: refuse; open: the call goes, said once)."""
        watcher = self.watcher
        assert watcher is not None
        if watcher.wait_heard(self.first_contact_by - self.monotonic()):
            return
        if self.fail_mode == "closed":
            self.refused += 1
            raise AgentHalted(self.agent_id, "no answer from the control channel yet and the fail mode is closed",
                              "guard:fail-closed", -1)
        if not self._unheard_logged:
            self._unheard_logged = True
            log.error("spanwarden: no answer from the control channel %s yet; agent %s fails open (its calls, "
                      "tools that need approval included, go unguarded until it answers)", watcher.base,
                      self.agent_id)

    def _out_of_touch(self) -> bool:
        """True when the fail mode is open and the channel is lost; raises when it is closed."""
        if self.watcher is None or self.watcher.seconds_out_of_touch() <= self.out_of_touch_s:
            if self._failing:
                log.warning("spanwarden: control channel back for agent %s", self.agent_id)
                self._failing = False
            return False
        if not self._failing:
            log.error("spanwarden: control channel lost for agent %s; failing %s", self.agent_id, self.fail_mode)
            self._failing = True
        if self.fail_mode == "closed":
            self.refused += 1
            raise AgentHalted(self.agent_id, "control channel unreachable and the fail mode is closed",
                              "guard:fail-closed", -1)
        return True


def _resource_of(scope: str) -> str:
    """What a scoped decision holds: a resource by its name, a model as `model:<name>`."""
    return scope if scope.startswith("model:") else scope.partition(":")[2]


MAX_IN_FLIGHT = 100_000  # LLM spans remembered as checked between their start and end
GUARDED_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "execute_tool",
                                "invoke_agent"})


class GuardSpanProcessor(SpanProcessor):
    """Applies the guard when an LLM or tool span starts, i.e. before the call it wraps goes out; with a
    spend lease, reserves the call's estimated cost then (refined by the client call's own limits before it
    is sent, `call_limits.py`) and settles the real cost when the span ends."""

    def __init__(self, guard: Guard, lease: SpendLease | None = None) -> None:
        self.guard = guard
        self.lease = lease
        self.effects = EffectGate(guard)
        self.models = ModelGate(guard)
        self._reserved: dict[int, Reservation] = {}
        self._checked: set[int] = set()  # LLM spans in flight that were checked at their start
        self._told_unwatched = False
        call_limits.listen(self)  # the backstop for client calls no checked span wraps, and leases' limits

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attributes = span.attributes or {}
        tool = attributes.get("gen_ai.tool.name")
        watcher = self.guard.watcher
        # Reading the resource costs a pass over the attributes: only when a decision is scoped to one.
        resource = (resource_of(attributes) if watcher is not None
                    and any(d.scope.startswith("resource:") for d in watcher.scoped) else "")
        if attributes.get("gen_ai.operation.name") in GUARDED_OPERATIONS or tool or resource:
            model = str(attributes.get("gen_ai.request.model", ""))
            self.guard.check(str(tool or ""), model, resource)
            if not tool:
                self.models.check(model)
                if len(self._checked) < MAX_IN_FLIGHT:
                    self._checked.add(span.context.span_id)
        if tool:
            self.guard.await_approval(str(tool), str(attributes.get("gen_ai.tool.call.arguments", "")))
        if watcher is not None and (watcher.approval_effects or watcher.egress_internal is not None):
            self.effects.on_start(span, attributes, str(tool or ""), parent_context)
        if self.lease is not None and not tool:
            reserved = self.lease.reserve(self.lease.call(attributes))
            if reserved is not None:
                self._reserved[span.context.span_id] = reserved

    def client_call(self, span_id: int, body: Mapping[str, Any]) -> None:
        """An openai/anthropic request about to be sent: checked here unless the LLM span around it was
        checked at its start (never twice: a throttle's token is taken once per call); and, where first calls
        to a model are held, asked about by its model."""
        model = body.get("model")
        model = model if isinstance(model, str) else ""
        if not (span_id and span_id in self._checked):
            if not self._told_unwatched:
                self._told_unwatched = True
                log.warning("spanwarden: an LLM client call of agent %s ran outside any LLM span (is its "
                            "instrumentation installed and active?); the guard checks such calls at the client, "
                            "but the service sees no spans, cost or tokens for them", self.guard.agent_id)
            self.guard.check(model=model)
        self.models.check(model)  # the request's own model, whatever its span said at its start

    def refine(self, span_id: int, limits: CallLimits) -> None:
        """The client call inside span `span_id` states its limits: reserve by them instead (raises
        AgentHalted, before the request is sent, when the lease cannot cover them)."""
        held = self._reserved.get(span_id)
        if held is None or self.lease is None or (held.bounded and held.stated_prompt):
            return
        better = self.lease.refined(held, limits)
        if better == held:
            return
        try:
            taken = self.lease.exchange(held, better)
        except AgentHalted:
            self._reserved.pop(span_id, None)
            raise
        if taken is None:
            self._reserved.pop(span_id, None)
        else:
            self._reserved[span_id] = taken

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        self._checked.discard(span.context.span_id)
        if self.lease is None:
            return
        reserved = self._reserved.pop(span.context.span_id, None)
        if reserved is not None:
            self.lease.settle(reserved, span.attributes or {})

    def shutdown(self) -> None:
        call_limits.unlisten(self)  # its provider is shut down: a later client call is not its to refuse
        if self.guard.watcher is not None:
            self.guard.watcher.stop()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
