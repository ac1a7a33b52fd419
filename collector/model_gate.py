"""The guard's side of first calls to a model: before this process's first call to a model (and again every
ALLOWED_FOR_S), the guard asks the service whether the model may be called; the service prices it against
the agent's own calls (`spanwarden/model_gate.py`). A model far dearer than anything the agent pays waits
for a human, as an access request for `model:<name>`: held like a sensitive table (`wait`) or refused at
once (`fail_fast`). Asked only where the service says such calls are held (its approval rules), with the
model the call names before it is sent: the request's own `model` at the openai/anthropic client, or the
span's `gen_ai.request.model` at its start for other clients.

If the service cannot be asked, the guard's fail mode decides: closed refuses the call, open lets it go
(said once) and asks again on the next call.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from spanwarden.collector.halted import AccessPending, AgentHalted

if TYPE_CHECKING:
    from spanwarden.collector.guard import Guard

log = logging.getLogger(__name__)
ALLOWED_FOR_S = 300.0
MAX_ALLOWED = 1024
UNREACHABLE = "guard:approval-unreachable"


class ModelGate:
    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.allowed: dict[str, float] = {}  # model -> until when this process may call it without asking
        self._lock = threading.Lock()
        self._told_unreachable = False

    def check(self, model: str) -> None:
        """Return when a call to `model` may go; raise AgentHalted (AccessPending) when it may not."""
        watcher = self.guard.watcher
        if not model or watcher is None or not watcher.models_held:
            return
        if self.allowed.get(model, 0.0) > self.guard.clock():
            return
        try:
            state = self.guard.ask(f"a first call to {model}",
                                   {"tool": "", "arguments_digest": "", "model": model})
        except AgentHalted as exc:
            if exc.decided_by != UNREACHABLE or self.guard.fail_mode == "closed":
                raise
            self.guard.refused -= 1  # `ask` counted a refusal: the fail mode lets this call go
            if not self._told_unreachable:
                self._told_unreachable = True
                log.error("spanwarden: cannot ask the service about a first call to %s (%s); agent %s fails open",
                          model, exc.reason, self.guard.agent_id)
            return
        if state is not None:
            self._hold(model, state)
        with self._lock:
            if len(self.allowed) >= MAX_ALLOWED:
                self.allowed.clear()
            self.allowed[model] = self.guard.clock() + ALLOWED_FOR_S

    def _hold(self, model: str, state: dict[str, object]) -> None:
        """Wait for the model's access request to be approved (or raise: denied, timed out, fail_fast)."""
        watcher = self.guard.watcher
        assert watcher is not None
        resource = str(state.get("resource") or f"model:{model}")
        if state.get("status") not in ("pending", "approved"):
            self.guard.refused += 1
            who, why = state.get("answered_by"), state.get("answer_reason")
            raise AgentHalted(self.guard.agent_id, f"access to {resource} {state.get('status')}"
                              f"{f' by {who}' if who else ''}{f': {why}' if why else ''} "
                              f"(request {state.get('id')})",
                              f"human:{who}" if who else "policy:access-requests", -1, scope=resource)
        if state.get("status") == "approved":
            return
        pending = AccessPending(self.guard.agent_id, resource, str(state["id"]), "policy:access-requests", -1)
        if watcher.access_hold != "wait":
            self.guard.refused += 1
            raise pending
        self.guard.await_access(pending)
