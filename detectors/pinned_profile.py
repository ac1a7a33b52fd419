"""Drift from a reviewed profile: once a compliance reviewer pins what an agent may touch (resources, tools,
models), anything outside it is a finding — each new item once, so a reviewer sees what changed rather than
a flood. Pure: the pinned sets come in, findings go out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.finding import Finding, Severity

MAX_REPORTED = 1000  # per agent: items already reported are not reported again


@dataclass
class PinnedProfile:
    """What the agent may do, as reviewed: `pinned_by` and `pinned_s` say who and when."""

    resources: frozenset[str]
    tools: frozenset[str]
    models: frozenset[str]
    pinned_by: str = ""
    pinned_s: float = 0.0
    reported: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {"resources": sorted(self.resources), "tools": sorted(self.tools), "models": sorted(self.models),
                "pinned_by": self.pinned_by, "pinned_s": self.pinned_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PinnedProfile:
        return cls(frozenset(map(str, data["resources"])), frozenset(map(str, data["tools"])),
                   frozenset(map(str, data["models"])), str(data.get("pinned_by", "")),
                   float(data.get("pinned_s", 0.0)))


class ProfileDrift:
    name: ClassVar[str] = "pinned_profile"

    def observe(self, record: SpanRecord, pinned: PinnedProfile) -> list[Finding]:
        found = []
        for kind, item, allowed in (("resource", record.resource, pinned.resources),
                                    ("tool", record.tool_name, pinned.tools),
                                    ("model", record.model, pinned.models)):
            key = f"{kind}:{item}"
            if not item or item in allowed or key in pinned.reported or len(pinned.reported) >= MAX_REPORTED:
                continue
            pinned.reported.add(key)
            found.append(Finding(
                record.agent_id, self.name, f"drift_{kind}", 1.0, Severity.WARNING, 1.0, 0.0, kind,
                f"used {kind} {item} outside its pinned profile (pinned by {pinned.pinned_by or 'unknown'})",
                record.time_s, (f"{record.trace_id}/{record.span_id}",), item))
        return found
