"""The one exception spanwarden raises inside an agent, on purpose: the call was not made."""

from __future__ import annotations


class AgentHalted(RuntimeError):
    """This agent has been halted: the call was not made. Carries who decided and why."""

    def __init__(self, agent_id: str, reason: str, decided_by: str, version: int) -> None:
        super().__init__(f"agent {agent_id} is halted by {decided_by}: {reason}")
        self.agent_id, self.reason, self.decided_by, self.version = agent_id, reason, decided_by, version
