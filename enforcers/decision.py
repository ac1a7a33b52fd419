"""Decision: an agent's current enforcement state, as the guard inside the agent applies it."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    THROTTLE = "throttle"
    REQUIRE_APPROVAL = "require_approval"
    HALT = "halt"

    @property
    def rank(self) -> int:
        """Place on the ladder; require_approval sits below halt and above throttle."""
        return _RANK[self]


_RANK = {Action.ALLOW: 0, Action.WARN: 1, Action.THROTTLE: 2, Action.REQUIRE_APPROVAL: 3, Action.HALT: 4}
LADDER = (Action.ALLOW, Action.WARN, Action.THROTTLE, Action.HALT)


@dataclass(frozen=True, slots=True)
class Decision:
    """`version` only grows per agent; the guard applies the newest version it has seen. `expires_s` of
    None means until a human resumes the agent. `scope` narrows a human's decision to some of the agent's
    calls ("tool:<pattern>" or "model:<pattern>"); "" is the agent-wide decision. Scoped decisions stand
    beside the agent-wide one, so resuming a scope undoes exactly that scope."""

    agent_id: str
    action: Action
    reason: str
    decided_by: str  # "policy:<rule id>@<policy version>" or "human:<name>"
    issued_s: float
    version: int
    expires_s: float | None = None
    throttle_per_s: float | None = None
    findings: tuple[str, ...] = field(default=())  # "detector/kind" of the findings behind it
    command: str = ""
    scope: str = ""

    def in_force(self, now_s: float) -> bool:
        return self.expires_s is None or now_s < self.expires_s

    def covers(self, tool: str, model: str, resource: str = "") -> bool:
        """Whether this decision applies to a call of `tool` (or "") with `model` (or "") touching `resource`
        (or "")."""
        if not self.scope:
            return True
        kind, _, pattern = self.scope.partition(":")
        value = {"tool": tool, "model": model, "resource": resource}.get(kind, "")
        if kind == "resource":
            return value == pattern  # resource names hold any character: matched exactly
        return bool(value) and fnmatch.fnmatchcase(value, pattern)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["action"] = self.action.value
        out["findings"] = list(self.findings)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        values = {k: v for k, v in data.items() if k in _FIELDS}  # the control channel adds its own keys
        values["action"] = Action(values["action"])
        values["findings"] = tuple(values.get("findings", ()))
        return cls(**values)


def allow(agent_id: str, now_s: float = 0.0) -> Decision:
    """The state of an agent nothing has been decided about (version 0)."""
    return Decision(agent_id, Action.ALLOW, "no decision", "default", now_s, 0)


def parse_scope(tool: str | None = None, model: str | None = None, resource: str | None = None) -> str:
    if sum(bool(x) for x in (tool, model, resource)) > 1:
        raise ValueError("a decision is scoped by one tool, model or resource, not several")
    return (f"tool:{tool}" if tool else f"model:{model}" if model else f"resource:{resource}" if resource
            else "")


_FIELDS = frozenset(Decision.__dataclass_fields__)
