"""Access requests: an agent reached for a resource outside its profile, and a human answers once —
approve (for a while or for good: the resource joins the agent's profile) or deny (the resource stays
blocked for the agent until lifted). Pure and serialisable: kept in the pipeline's state."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

PENDING, APPROVED, DENIED = "pending", "approved", "denied"
MAX_KEPT = 10_000  # answered requests are forgotten oldest first past this


@dataclass
class AccessRequest:
    id: str
    agent_id: str
    resource: str
    opened_s: float
    reason: str
    status: str = PENDING
    answered_by: str = ""
    answered_s: float | None = None
    until_s: float | None = None  # an approval for a while; None: for good (or not approved)
    answer_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AccessBook:
    def __init__(self) -> None:
        self.requests: dict[str, AccessRequest] = {}

    def open(self, agent_id: str, resource: str, now_s: float, reason: str) -> tuple[AccessRequest, bool]:
        """The pending request for this agent and resource, opened if there is none; (request, new?)."""
        for request in self.requests.values():
            if (request.agent_id, request.resource, request.status) == (agent_id, resource, PENDING):
                return request, False
        request = AccessRequest(request_id(agent_id, resource, now_s), agent_id, resource, now_s, reason)
        self.requests[request.id] = request
        if len(self.requests) > MAX_KEPT:
            oldest = next(k for k, r in self.requests.items() if r.status != PENDING)
            del self.requests[oldest]
        return request, True

    def answer(self, request_id: str, approve: bool, actor: str, now_s: float, reason: str,
               for_s: float | None = None) -> AccessRequest:
        request = self.requests.get(request_id)
        if request is None:
            raise KeyError(f"no access request {request_id!r}")
        if request.status != PENDING:
            raise ValueError(f"access request {request_id} was already {request.status} by {request.answered_by}")
        request.status = APPROVED if approve else DENIED
        request.answered_by, request.answered_s, request.answer_reason = actor, now_s, reason
        request.until_s = now_s + for_s if approve and for_s is not None else None
        return request

    def granted(self, agent_id: str, resource: str, now_s: float) -> AccessRequest | None:
        """The approval in force for this agent and resource, if a human gave one (newest first)."""
        for request in reversed(self.requests.values()):
            if (request.agent_id == agent_id and request.resource == resource and request.status == APPROVED
                    and (request.until_s is None or request.until_s > now_s)):
                return request
        return None

    def restore(self, request: AccessRequest) -> bool:
        """Put back an answered request (recovered from the audit log after a crash or a lost snapshot);
        False when the book already holds it answered."""
        held = self.requests.get(request.id)
        if held is not None and held.status != PENDING:
            return False
        self.requests[request.id] = request
        return True

    def pending(self) -> list[AccessRequest]:
        return [r for r in self.requests.values() if r.status == PENDING]

    def to_state(self) -> dict[str, Any]:
        return {"requests": [r.to_dict() for r in self.requests.values()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.requests = {d["id"]: AccessRequest(**d) for d in state.get("requests", [])}

    def of_agent(self, agent_id: str) -> list[AccessRequest]:
        return [r for r in self.requests.values() if r.agent_id == agent_id]

    def forget_agent(self, agent_id: str) -> None:
        for request in self.of_agent(agent_id):
            del self.requests[request.id]


def egress_view(rules: Any, environment: str | None, internal: list[str] | tuple[str, ...],
                supported: bool = True) -> dict[str, Any]:
    """What a guard is told about egress (`rules`: the policy's `access_requests`): whether writes to external
    hosts are held where it runs (only where its environment is known), and which hosts are the agents' own."""
    applies = supported and rules.egress and environment is not None and environment in rules.environments
    return {"applies": bool(applies), "internal": list(internal)}


def request_id(agent_id: str, resource: str, opened_s: float) -> str:
    """Named by what it asks for and when: the same on every replay, and unique across workers."""
    digest = hashlib.blake2b(f"{agent_id}\x00{resource}\x00{opened_s!r}".encode(), digest_size=5).hexdigest()
    return f"ar-{digest}"
