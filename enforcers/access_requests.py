"""Access requests: an agent reached for a resource outside its profile, and a human answers once —
approve (for a while or for good: the resource joins the agent's profile) or deny (the resource stays
blocked for the agent until lifted). Pure and serialisable: kept in the pipeline's state."""

from __future__ import annotations

import itertools
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
        self._ids = itertools.count(1)

    def open(self, agent_id: str, resource: str, now_s: float, reason: str) -> tuple[AccessRequest, bool]:
        """The pending request for this agent and resource, opened if there is none; (request, new?)."""
        for request in self.requests.values():
            if (request.agent_id, request.resource, request.status) == (agent_id, resource, PENDING):
                return request, False
        request = AccessRequest(f"ar-{next(self._ids)}", agent_id, resource, now_s, reason)
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

    def pending(self) -> list[AccessRequest]:
        return [r for r in self.requests.values() if r.status == PENDING]

    def to_state(self) -> dict[str, Any]:
        return {"requests": [r.to_dict() for r in self.requests.values()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.requests = {d["id"]: AccessRequest(**d) for d in state.get("requests", [])}
        highest = max((int(k.split("-", 1)[1]) for k in self.requests), default=0)
        self._ids = itertools.count(highest + 1)
