"""Write volume: rows an agent writes or deletes per window against its own history (like rows read in
`data_access`), and writes the guard could not hold before they ran.

A write counts the rows its instrumentation reports (`db.response.returned_rows`, `spanwarden.rows`) or 1
when it reports none (DB-API instrumentations never do), so an agent deleting row by row is seen as well as
one bulk DELETE. Operations refused by the guard did not run and count for nothing.

`unheld_write`: an operation the policy holds for approval (`approvals.effects`, in its environments) that
arrives with no approval stamped on it ran without one — its span carried the statement only when it
ended, the agent has no guard (spans through a Collector), or the guard failed open. One finding per
operation summary per gate interval, so an agent that keeps doing it is named without flooding the log.

>>> from spanwarden.collector.span_record import make_record
>>> detector = WriteVolume("a", WriteVolumeConfig(held_environments=("prod",),
...                                               held_effects=(("destructive", ("*",)),)))
>>> detector.observe(make_record(environment="prod", effect="destructive", effect_summary="DROP TABLE t",
...                              resource="db:sqlite:t", end_ns=10**9)).kind
'unheld_write'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig
from spanwarden.enforcers.approvals import effect_needs_approval


def _rows_windows() -> WindowTotalsConfig:
    return WindowTotalsConfig(windows_s=(60, 600), floor_per_min=100, floor_total=500, min_events=3, low=1.0,
                              high=1e10)


@dataclass(frozen=True)
class WriteVolumeConfig:
    warmup_s: float = 1800.0
    rows: WindowTotalsConfig = field(default_factory=_rows_windows)
    # Filled from the policy (`approvals`): where and which operations must have gone out under an approval.
    held_environments: tuple[str, ...] = ()
    held_effects: tuple[tuple[str, tuple[str, ...]], ...] = ()


class WriteVolume:
    """Per-agent detector of write bursts and of writes that ran without the approval they needed."""

    name: ClassVar[str] = "write_volume"

    def __init__(self, agent_id: str, config: WriteVolumeConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or WriteVolumeConfig()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.writes = 0
        self.unheld = 0  # operations that needed an approval and ran without one
        self.rows: WindowTotals | None = None  # made at the first write: most agents never write

    def observe(self, record: SpanRecord) -> Finding | None:
        return self.observe_at(record, record.time_s)

    def observe_at(self, record: SpanRecord, t: float) -> Finding | None:
        """`observe`, with the record's `time_s` already read (`AgentDetectors` reads it once for all)."""
        last = self.last_time
        if last is not None and not t >= last:  # `clean_time`, inline: it runs for every span
            t = last
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        if not record.is_write:
            return None
        self.writes += 1
        if self.rows is None:
            self.rows = WindowTotals(self.config.rows)
        self.rows.add(t, float(record.rows or 1))
        if self._unheld(record):
            self.unheld += 1
            return Finding(
                agent_id=self.agent_id, detector=self.name, kind="unheld_write", score=1.0,
                severity=Severity.WARNING, observed=1.0, expected=0.0, unit="writes",
                reason=(f"{record.effect_summary or record.effect} on {record.resource or 'an unnamed resource'} "
                        f"ran in {record.environment} without the approval the policy asks for: the guard did not "
                        "see it before it ran"),
                time_s=record.time_s, evidence=evidence_of(record), subject=record.effect_summary[:120],
            )
        if t - self.first_time < self.config.warmup_s:
            return None
        spike = self.rows.worst()
        if spike is None:
            return None
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="write_spike", score=round(spike.score, 3),
            severity=Severity.CRITICAL if spike.critical else Severity.WARNING, observed=spike.total,
            expected=spike.expected, unit=f"rows_written_per_{spike.window_s}s",
            reason=(f"wrote or deleted {spike.total:,.0f} rows in {spike.events} writes within {spike.window_s}s; "
                    f"its 99.9th percentile for {spike.window_s}s is {spike.expected:,.0f} "
                    f"(latest {record.effect_summary or record.resource})"),
            time_s=record.time_s, evidence=evidence_of(record), subject=record.resource,
        )

    def _unheld(self, record: SpanRecord) -> bool:
        cfg = self.config
        return (not record.approval and record.environment in cfg.held_environments
                and effect_needs_approval(cfg.held_effects, record.effect, record.resource,
                                          _tables(record.effect_summary)))

    def to_state(self) -> dict[str, Any]:
        return {"first_time": self.first_time, "last_time": self.last_time, "writes": self.writes,
                "unheld": self.unheld, "rows": self.rows.to_state() if self.rows is not None else None}

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.writes, self.unheld = int(state["writes"]), int(state.get("unheld", 0))
        self.rows = None
        if state.get("rows") is not None:
            self.rows = WindowTotals(self.config.rows)
            self.rows.load_state(state["rows"])


def _tables(summary: str) -> tuple[str, ...]:
    """The tables a summary names ("DELETE FROM a, b without WHERE" → a, b): what resource patterns match."""
    for marker in (" FROM ", " INTO ", "UPDATE ", "TABLE ", "TRUNCATE ", "ALTER "):
        if marker in summary:
            rest = summary.split(marker, 1)[1].split(" without", 1)[0].split(" …", 1)[0].split(";", 1)[0]
            return tuple(t.strip() for t in rest.split(",") if t.strip())
    return ()
