"""The one exception spanwarden raises inside an agent, on purpose: the call was not made."""

from __future__ import annotations


class AgentHalted(RuntimeError):
    """This agent has been halted, or (`scope`: a tool, a model, a resource) its calls of that kind are
    refused: the call was not made. Carries who decided and why."""

    def __init__(self, agent_id: str, reason: str, decided_by: str, version: int, scope: str = "") -> None:
        if scope:
            message = f"agent {agent_id}: calls to {scope} are refused by {decided_by}: {reason}"
        else:
            message = f"agent {agent_id} is halted by {decided_by}: {reason}"
        super().__init__(message)
        self.agent_id, self.reason, self.decided_by, self.version = agent_id, reason, decided_by, version
        self.scope = scope


class AccessPending(AgentHalted):
    """The call reaches for a resource that waits for a human's approval (`request_id`): it was not made.
    Raised at once under the `fail_fast` hold, or when a `wait` hold runs out; the agent may retry the call
    once `spanwarden approve <request_id>` has been given."""

    def __init__(self, agent_id: str, resource: str, request_id: str, decided_by: str, version: int) -> None:
        super().__init__(agent_id, f"access to {resource} waits for approval of request {request_id}",
                         decided_by, version)
        self.resource, self.request_id = resource, request_id
