"""Call volume: how often the agent calls each of its tools, per 1 and 10 minutes, against its own learned
call rate for that tool, the way spend is judged. Without recorded arguments, calling a tool often says
nothing about a loop (the agent may just be busy); only a rate far beyond the agent's own upper quantile
does, and even then it is a reason to warn or slow down, never alone a reason to halt (the shipped policy
caps it at throttle).

Tolerance is built in: the baseline is the learned 99.9th percentile of each window's count, a window must
reach several times that, windows above the quantile are learned slowly rather than ignored (so a ×3
autoscale over tens of minutes becomes the new normal instead of an alarm), and a full day of warm-up lets
the baseline see the agent's daily peak before it may act.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig

OTHER = "*other*"  # tools past `max_tools` share one baseline


def _call_windows() -> WindowTotalsConfig:
    return WindowTotalsConfig(windows_s=(60, 600), warn_multiple=4.0, critical_multiple=16.0, floor_per_min=30.0,
                              floor_total=30.0, min_events=10, low=1.0, high=1e7)


@dataclass(frozen=True)
class CallVolumeConfig:
    windows: WindowTotalsConfig = field(default_factory=_call_windows)
    warmup_s: float = 86_400.0
    max_tools: int = 16


class CallVolume:
    """Per-agent detector of tool calls far more frequent than the agent's own learned rate."""

    name: ClassVar[str] = "call_volume"

    def __init__(self, agent_id: str, config: CallVolumeConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or CallVolumeConfig()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.tools: dict[str, WindowTotals] = {}

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
        if not record.tool_name:
            return None
        tool = record.tool_name
        if tool not in self.tools and len(self.tools) >= self.config.max_tools:
            tool = OTHER
        totals = self.tools.get(tool)
        if totals is None:
            totals = self.tools[tool] = WindowTotals(self.config.windows)
        totals.add(t, 1.0)
        if t - self.first_time < self.config.warmup_s:
            return None
        spike = totals.worst()
        if spike is None:
            return None
        per_min = 60 / spike.window_s
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="call_volume", score=round(spike.score, 3),
            severity=Severity.CRITICAL if spike.critical else Severity.WARNING,
            observed=round(spike.total * per_min, 2), expected=round(spike.expected * per_min, 2),
            unit="calls_per_min",
            reason=(f"called {tool} {spike.total:.0f} times within {spike.window_s}s; its 99.9th percentile for "
                    f"{spike.window_s}s is {spike.expected:.0f}"),
            time_s=record.time_s, evidence=evidence_of(record), subject=tool,
        )

    def to_state(self) -> dict[str, Any]:
        return {"first_time": self.first_time, "last_time": self.last_time,
                "tools": {tool: totals.to_state() for tool, totals in self.tools.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.tools = {}
        for tool, saved in state["tools"].items():
            totals = self.tools[tool] = WindowTotals(self.config.windows)
            totals.load_state(saved)
