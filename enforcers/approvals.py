"""Human approval for destructive actions: which calls need it (policy: tools by name, operations by their
effect and resource), and the requests themselves.

A request is opened when an agent is about to make such a call, is answered by a human (approve or deny),
or expires; the guard holds the call until then. Pure: time comes in as arguments. The matching functions
run in the agent's guard too (with the rules it is sent) and on the service (which decides).
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

_RANK = {"write": 1, "destructive": 2}

PENDING, APPROVED, DENIED, EXPIRED = "pending", "approved", "denied", "expired"


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    agent_id: str
    tool: str
    arguments_digest: str
    created_s: float
    expires_s: float
    status: str = PENDING
    decided_by: str = ""
    reason: str = ""
    # Held by its effect rather than (or besides) its tool's name: what it does, to what, never a literal.
    effect: str = ""
    resource: str = ""
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rules_view(tools: tuple[str, ...], environments: tuple[str, ...], timeout_s: float,
               environment: str | None, effects: Sequence[tuple[str, Sequence[str]]] = ()) -> dict[str, Any]:
    """What an agent's guard is told: the tool patterns and effect rules that need approval where it runs
    (all of them when its environment is not known)."""
    applies = environment is None or not environments or environment in environments
    return {"tools": list(tools) if applies else [], "timeout_s": timeout_s,
            "effects": [{"effect": e, "resources": list(r)} for e, r in effects] if applies else []}


def required(rules: Any, environment: str | None, tool: str, effect: str = "", resource: str = "",
             targets: Iterable[str] = ()) -> bool:
    """Whether the policy's `approvals` (`rules`) hold this call where the agent runs (`None`: an agent the
    service has not heard from, for which the rules apply): its tool by name, or what it does."""
    environments, env = (() if environment is None else rules.environments), environment or ""
    if needs_approval(rules.tools, environments, tool, env):
        return True
    return (not environments or env in environments) and effect_needs_approval(
        [(r.effect, r.resources) for r in rules.effects], effect, resource, targets)


def effect_rules(rules: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The policy's `approvals.effects` as (effect, resource patterns), for `rules_view`."""
    return [(r.effect, tuple(r.resources)) for r in rules.effects]


def effect_needs_approval(rules: Iterable[tuple[str, Sequence[str]]], effect: str, resource: str,
                          targets: Iterable[str] = ()) -> bool:
    """Whether an operation with `effect` on `resource` (and the tables or hosts it names) matches a rule
    (effect, resource patterns): a write rule covers destructive operations too."""
    rank = _RANK.get(effect, 0)
    if not rank:
        return False
    names = _names(resource, targets)
    return any(rank >= _RANK.get(wanted, 3) and any(fnmatch.fnmatchcase(n, p.lower()) for p in patterns
                                                    for n in names) for wanted, patterns in rules)


def _names(resource: str, targets: Iterable[str]) -> list[str]:
    """What a resource pattern is matched against: `db:pg:prod.orders`, `prod.orders`, and each table."""
    names = [resource.lower()] if resource else []
    kind, _, rest = resource.partition(":")
    if kind == "db":
        rest = rest.partition(":")[2]
    if rest:
        names.append(rest.lower())
    names.extend(t.lower() for t in targets if t)
    return names or [""]


def is_external(host: str, internal: Iterable[str]) -> bool:
    """A host that is not one of the agent's own services (`internal`: fnmatch patterns, case-insensitive)."""
    h = host.lower().rstrip(".")
    return bool(h) and not any(fnmatch.fnmatchcase(h, p.lower()) for p in internal)


def needs_approval(tools: tuple[str, ...], environments: tuple[str, ...], tool: str, environment: str) -> bool:
    return bool(tool) and (not environments or environment in environments) and any(
        fnmatch.fnmatchcase(tool, pattern) for pattern in tools)


class ApprovalBook:
    """Open requests by id; a pending request for the same agent, tool and arguments is reused."""

    def __init__(self, max_requests: int = 10_000) -> None:
        self.requests: dict[str, ApprovalRequest] = {}
        self.max_requests = max_requests

    def _new_id(self) -> str:
        """Short enough to type (`spanwarden approve req-3f9a1c07`), not guessable: waiting on a request by id
        must not tell a stranger about another agent's."""
        while True:
            request_id = f"req-{secrets.token_hex(4)}"
            if request_id not in self.requests:
                return request_id

    def open(self, agent_id: str, tool: str, arguments_digest: str, now_s: float, timeout_s: float,
             effect: str = "", resource: str = "", summary: str = "") -> tuple[ApprovalRequest, bool]:
        """(request, whether it is new)."""
        for request in self.requests.values():
            if (request.status == PENDING and (request.agent_id, request.tool, request.arguments_digest)
                    == (agent_id, tool, arguments_digest) and now_s < request.expires_s):
                return request, False
        if len(self.requests) >= self.max_requests:  # bounded: forget the oldest answered ones
            answered = [k for k, r in self.requests.items() if r.status != PENDING]
            for key in answered[: max(1, len(answered) // 2)]:
                del self.requests[key]
        request = ApprovalRequest(self._new_id(), agent_id, tool, arguments_digest, now_s, now_s + timeout_s,
                                  effect=effect, resource=resource, summary=summary)
        self.requests[request.id] = request
        return request, True

    def get(self, request_id: str, now_s: float) -> tuple[ApprovalRequest | None, bool]:
        """(request, whether it expired just now)."""
        request = self.requests.get(request_id)
        if request is not None and request.status == PENDING and now_s >= request.expires_s:
            request = self.requests[request_id] = replace(request, status=EXPIRED, reason="no answer in time")
            return request, True
        return request, False

    def answer(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float) -> ApprovalRequest:
        request, _ = self.get(request_id, now_s)
        if request is None:
            raise KeyError(f"no approval request {request_id!r}")
        if request.status != PENDING:
            raise ValueError(f"request {request_id} is already {request.status}")
        answered = replace(request, status=APPROVED if approve else DENIED, decided_by=actor, reason=reason)
        self.requests[request_id] = answered
        return answered

    def pending(self, now_s: float) -> list[ApprovalRequest]:
        return [r for key in list(self.requests) if (r := self.get(key, now_s)[0]) and r.status == PENDING]
