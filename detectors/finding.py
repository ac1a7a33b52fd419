"""Finding: what a detector says about one agent at one moment, with the numbers behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """Ordered so that policies can compare: INFO < WARNING < CRITICAL."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}; use info, warning or critical") from None


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly. `score` is in multiples of the detector's warning threshold (>= 1 is anomalous), so
    scores compare across detectors; `observed` and `expected` are the value seen and the baseline held
    against it, in `unit`."""

    agent_id: str
    detector: str
    kind: str
    score: float
    severity: Severity
    observed: float
    expected: float
    unit: str
    reason: str
    time_s: float
    evidence: tuple[str, ...] = field(default=())  # "trace_id/span_id" of the spans that triggered it
    subject: str = ""  # what the finding is about within the agent: a resource, a tool; "" for the agent

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["severity"] = self.severity.label
        out["evidence"] = list(self.evidence)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        values = dict(data)
        values["severity"] = Severity.parse(values["severity"])
        values["evidence"] = tuple(values.get("evidence", ()))
        return cls(**values)
