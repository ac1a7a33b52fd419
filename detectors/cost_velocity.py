"""Cost velocity: USD spent per window (short to long) against the agent's own learned spend, plus the
hard hourly ceiling that acts even before anything is learned.

The baseline is a decaying histogram of spend per window, per window size; a window is anomalous when it
spends a multiple of the learned 99.9th percentile (and more than a floor, so pennies never page anyone).
Anomalous windows are not learned. A partially filled window is scored as it fills, so a runaway is seen
within seconds, not at the end of the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import clean_time, evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.quantile_sketch import DecayingLogHistogram


@dataclass(frozen=True)
class CostVelocityConfig:
    windows_s: tuple[int, ...] = (10, 60, 600)
    quantile: float = 0.999
    warn_multiple: float = 3.0
    critical_multiple: float = 10.0
    floor_usd_per_min: float = 0.5
    min_calls: int = 3  # one expensive call is not velocity
    warmup_s: float = 3600.0
    half_life_s: float = 3 * 86_400.0
    hourly_budget_usd: float | None = 100.0


class _Window:
    __slots__ = ("seconds", "index", "spend", "calls", "anomalous", "history")

    def __init__(self, seconds: int, half_life_windows: float) -> None:
        self.seconds = seconds
        self.index: int | None = None
        self.spend = 0.0
        self.calls = 0
        self.anomalous = False
        self.history = DecayingLogHistogram(half_life=half_life_windows)

    def advance(self, t: float) -> None:
        index = int(t // self.seconds)
        if self.index is None:
            self.index = index
            return
        if index <= self.index:
            return
        if not self.anomalous:
            self.history.add(self.spend)
        empty = index - self.index - 1
        if empty:  # idle windows are normal spend too; cap so a year-long gap costs O(bins)
            self.history.add(0.0, min(empty, 1_000_000))
        self.index, self.spend, self.calls, self.anomalous = index, 0.0, 0, False


class CostVelocity:
    """Per-agent detector of spend rate against the agent's own spend history."""

    name: ClassVar[str] = "cost_velocity"

    def __init__(self, agent_id: str, config: CostVelocityConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or CostVelocityConfig()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.windows = [_Window(w, self.config.half_life_s / w) for w in self.config.windows_s]
        self.minute_spend = [0.0] * 60  # ring of the last hour, for the hard ceiling
        self.minute_index: int | None = None

    def observe(self, record: SpanRecord) -> Finding | None:
        t = clean_time(record.time_s, self.last_time)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        cost = record.cost_usd if math.isfinite(record.cost_usd) and record.cost_usd > 0 else 0.0
        for window in self.windows:
            window.advance(t)
            window.spend += cost
            window.calls += cost > 0
        hour_spend = self._add_to_hour(t, cost)
        if cost == 0:
            return None
        ceiling = self._ceiling(record, hour_spend)
        if ceiling is not None:
            return ceiling
        if t - self.first_time < self.config.warmup_s:
            return None
        return self._learned(record)

    def _learned(self, record: SpanRecord) -> Finding | None:
        cfg = self.config
        worst: tuple[float, _Window, float] | None = None
        for window in self.windows:
            if window.calls < cfg.min_calls:
                continue
            expected = window.history.quantile(cfg.quantile)
            level = max(expected * cfg.warn_multiple, cfg.floor_usd_per_min * window.seconds / 60)
            score = window.spend / level
            if score >= 1:
                window.anomalous = True
            if worst is None or score > worst[0]:
                worst = (score, window, expected)
        if worst is None or worst[0] < 1:
            return None
        score, window, expected = worst
        critical = score >= cfg.critical_multiple / cfg.warn_multiple
        per_min = 60 / window.seconds
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="cost_spike", score=round(score, 3),
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            observed=round(window.spend * per_min, 4), expected=round(expected * per_min, 4),
            unit="usd_per_min",
            reason=(f"spent ${window.spend:.2f} in {window.calls} calls within {window.seconds}s "
                    f"(${window.spend * per_min:.2f}/min); its 99.9th percentile for {window.seconds}s "
                    f"is ${expected:.3f}"),
            time_s=record.time_s, evidence=evidence_of(record),
        )

    def _add_to_hour(self, t: float, cost: float) -> float:
        minute = int(t // 60)
        if self.minute_index is None:
            self.minute_index = minute
        gap = minute - self.minute_index
        if gap > 0:
            for step in range(1, min(gap, 60) + 1):
                self.minute_spend[(self.minute_index + step) % 60] = 0.0
            self.minute_index = minute
        self.minute_spend[self.minute_index % 60] += cost
        return sum(self.minute_spend)

    def _ceiling(self, record: SpanRecord, hour_spend: float) -> Finding | None:
        budget = self.config.hourly_budget_usd
        if budget is None or hour_spend <= budget:
            return None
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="budget_exceeded",
            score=round(hour_spend / budget * self.config.critical_multiple / self.config.warn_multiple, 3),
            severity=Severity.CRITICAL, observed=round(hour_spend, 4), expected=budget, unit="usd_per_hour",
            reason=f"spent ${hour_spend:.2f} in the last hour, over the ${budget:.2f}/hour ceiling",
            time_s=record.time_s, evidence=evidence_of(record),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "first_time": self.first_time, "last_time": self.last_time,
            "minute_spend": list(self.minute_spend), "minute_index": self.minute_index,
            "windows": [
                {"seconds": w.seconds, "index": w.index, "spend": w.spend, "calls": w.calls,
                 "anomalous": w.anomalous, "history": w.history.to_state()}
                for w in self.windows
            ],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.minute_spend = [float(x) for x in state["minute_spend"]]
        self.minute_index = state["minute_index"]
        by_size = {w["seconds"]: w for w in state["windows"]}
        for window in self.windows:
            saved = by_size.get(window.seconds)
            if saved is None:  # a window size added by configuration since: it starts learning now
                continue
            window.index, window.spend, window.calls = saved["index"], saved["spend"], saved["calls"]
            window.anomalous = saved["anomalous"]
            window.history.load_state(saved["history"])
