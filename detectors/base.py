"""The detector contract: one instance per agent, fed one record at a time, state as plain JSON.

Like River's anomaly detectors, each detector scores a record against what it has learned and then learns
from it; unlike them it also decides whether to learn at all, so that anomalous traffic never becomes the
new normal. Detectors are pure: no I/O and no clock reads (time arrives with each record).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.finding import Finding

# Finding kinds that come from policy rather than from a learned baseline (a budget ceiling, a sensitive tag):
# they may be raised before a detector has warmed up.
POLICY_BACKSTOPS = frozenset({"budget_exceeded", "budget_projection", "sensitive_unreviewed"})


@runtime_checkable
class Detector(Protocol):
    """A per-agent detector."""

    name: ClassVar[str]

    def observe(self, record: SpanRecord) -> Finding | None:
        """Score the record against the baseline learned so far, then learn from it unless anomalous."""
        ...

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume exactly where it stopped, as JSON-compatible data."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Resume from `to_state()` output (of the same detector version)."""
        ...


def evidence_of(record: SpanRecord) -> tuple[str, ...]:
    return (f"{record.trace_id}/{record.span_id}",) if record.span_id else ()


def clean_time(record_time: float, last_time: float | None) -> float:
    """The record's time, or the detector's last time when the record is older (out of order, or a clock
    that jumped back): windows never run backwards, and late records count in the current window."""
    if last_time is None or record_time >= last_time:
        return record_time
    return last_time
