"""Cost velocity: USD spent per window (10 s to 10 min) against the agent's own learned spend, a call's price per
token against the agent's own (`price_jump`: a switch to a dearer model is seen on its first calls, not in the
hourly spend), the projection of when its hourly budget runs out at the current rate, and the hard hourly and
daily ceilings that act even before anything is learned."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.price_jump import PriceJump, PriceJumpConfig
from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig


def _spend_windows() -> WindowTotalsConfig:
    # Calls' costs are heavy-tailed (log-normal tokens): a 10 s or 1 min window holds a call or two, and two
    # dear calls close together cross three times its usual peak every few days on a fleet. Short windows are
    # there to stop a runaway in seconds: they raise only critical findings; the 10-minute window warns. No
    # window judges on fewer than 100 of its own (six 10-minute windows an hour in are not a baseline).
    return WindowTotalsConfig(min_history=100, warn_min_window_s=600)


@dataclass(frozen=True)
class CostVelocityConfig:
    windows: WindowTotalsConfig = field(default_factory=_spend_windows)
    warmup_s: float = 3600.0
    hourly_budget_usd: float | None = 100.0
    daily_budget_usd: float | None = None
    projection_warn_s: float = 900.0  # warn when the hourly budget would run out within this
    prior_strictness: float = 3.0  # a new agent judged on its peers' spend needs 3x more to be flagged
    price: PriceJumpConfig = field(default_factory=PriceJumpConfig)


class _Ring:
    """Spend per slot over a rolling span (60 minutes of a minute, or 24 hours of an hour), with its sum."""

    __slots__ = ("slot_s", "slots", "index", "sum", "_ends")

    def __init__(self, slot_s: float, count: int) -> None:
        self.slot_s, self.slots = slot_s, array("d", bytes(8 * count))
        self.index: int | None = None
        self.sum = 0.0
        self._ends = -math.inf  # below the current slot's end (by one float step, whatever the rounding)

    def add(self, t: float, amount: float) -> float:
        if t < self._ends:  # within the current slot (the common case): what the general case does there
            if amount:
                assert self.index is not None
                self.slots[self.index % len(self.slots)] += amount
                self.sum += amount
            return self.sum
        index = int(t // self.slot_s)
        n = len(self.slots)
        current = index if self.index is None else self.index
        if index > current:
            for step in range(1, min(index - current, n) + 1):
                self.slots[(current + step) % n] = 0.0
            self.sum = sum(self.slots)  # once per slot: keeps rounding from accumulating
            current = index
        self.index = current
        self.slots[current % n] += amount
        self.sum += amount
        self._ends = math.nextafter((current + 1) * self.slot_s, -math.inf)
        return self.sum

    def recent(self, count: int) -> float:
        assert self.index is not None
        index, slots, n = self.index, self.slots, len(self.slots)
        return sum([slots[(index - k) % n] for k in range(count)])


class CostVelocity:
    """Per-agent detector of spend rate against the agent's own spend history."""

    name: ClassVar[str] = "cost_velocity"

    def __init__(self, agent_id: str, config: CostVelocityConfig | None = None,
                 prior: WindowTotals | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or CostVelocityConfig()
        self.prior = prior  # peers' pooled spend history, for judging a new agent while it warms up
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.totals = WindowTotals(self.config.windows)
        self.hour = _Ring(60.0, 60)
        self.day = _Ring(3600.0, 24)
        self.price = PriceJump(self.config.price)

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
        cost = record.cost_usd
        if not 0 < cost < math.inf:  # NaN, infinite, free or negative: nothing spent
            cost = 0.0
        self.totals.add(t, cost)
        hour_spend = self.hour.add(t, cost)
        day_spend = self.day.add(t, cost)
        if cost == 0:
            return None
        jump = self._price_jump(record, t)
        return (self._ceiling(record, hour_spend, day_spend) or self._most_severe(jump, self._learned(record, t))
                or self._projection(record, hour_spend))

    @staticmethod
    def _most_severe(a: Finding | None, b: Finding | None) -> Finding | None:
        if a is None or b is None:
            return a or b
        return a if (a.severity, a.score) >= (b.severity, b.score) else b

    def _price_jump(self, record: SpanRecord, t: float) -> Finding | None:
        jump = self.price.observe(record, t)
        if jump is None:
            return None
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="price_jump",
            score=round(jump.multiple / self.price.config.warn_multiple, 3),
            severity=Severity.CRITICAL if jump.critical else Severity.WARNING,
            observed=round(jump.price, 4), expected=round(jump.usual, 4), unit="usd_per_million_tokens",
            reason=(f"{record.model or 'a model'} at ${jump.price:.2f} per million tokens, {jump.multiple:.0f}x "
                    f"its usual ${jump.usual:.3f}: {jump.calls} such calls costing ${jump.spent:.2f} within "
                    f"{self.price.config.window_s:.0f}s"),
            time_s=record.time_s, evidence=evidence_of(record),
        )

    def _learned(self, record: SpanRecord, t: float) -> Finding | None:
        if self.warmed_up(t):
            spike, against, kind = self.totals.worst(), "its", "cost_spike"
        elif self.prior is not None:  # still learning its own; judged (more leniently) on its peers'
            spike, against, kind = self.totals.worst(self.prior, self.config.prior_strictness), "its peers'", \
                "cost_spike_vs_peers"
        else:
            return None
        if spike is None:
            return None
        per_min = 60 / spike.window_s
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind=kind, score=round(spike.score, 3),
            severity=Severity.CRITICAL if spike.critical else Severity.WARNING,
            observed=round(spike.total * per_min, 4), expected=round(spike.expected * per_min, 4),
            unit="usd_per_min",
            reason=(f"spent ${spike.total:.2f} in {spike.events} calls within {spike.window_s}s "
                    f"(${spike.total * per_min:.2f}/min); {against} usual peak for {spike.window_s}s "
                    f"is ${spike.expected:.3f}"),
            time_s=record.time_s, evidence=evidence_of(record),
        )

    def warmed_up(self, t: float | None = None) -> bool:
        if self.first_time is None:
            return False
        now = t if t is not None else (self.last_time or self.first_time)
        return now - self.first_time >= self.config.warmup_s

    def _ceiling(self, record: SpanRecord, hour_spend: float, day_spend: float) -> Finding | None:
        cfg = self.config
        hourly, daily = cfg.hourly_budget_usd, cfg.daily_budget_usd
        if (hourly is None or hour_spend <= hourly) and (daily is None or day_spend <= daily):
            return None  # under both ceilings (the common case)
        for budget, spent, span in ((cfg.hourly_budget_usd, hour_spend, "hour"),
                                    (cfg.daily_budget_usd, day_spend, "day")):
            if budget is not None and spent > budget:
                return Finding(
                    agent_id=self.agent_id, detector=self.name, kind="budget_exceeded",
                    score=round(spent / budget * cfg.windows.critical_multiple / cfg.windows.warn_multiple, 3),
                    severity=Severity.CRITICAL, observed=round(spent, 4), expected=budget,
                    unit=f"usd_per_{span}",
                    reason=f"spent ${spent:.2f} in the last {span}, over the ${budget:.2f}/{span} ceiling",
                    time_s=record.time_s, evidence=evidence_of(record),
                )
        return None

    def _projection(self, record: SpanRecord, hour_spend: float) -> Finding | None:
        budget = self.config.hourly_budget_usd
        if budget is None:
            return None
        # The last five minutes are part of the last hour: when even the whole hour's spend, taken as the rate
        # of five minutes, leaves the budget for longer than the warning, so does the last five minutes' (the
        # common case: no slots summed; 0.1% margin for rounding).
        if self.config.projection_warn_s / 300 * 1.001 * hour_spend < budget - hour_spend:
            return None
        rate = self.hour.recent(5) / 300  # USD/s over the last five minutes
        if rate <= 0:
            return None
        runs_out_s = (budget - hour_spend) / rate
        if runs_out_s > self.config.projection_warn_s:
            return None
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="budget_projection",
            score=round(self.config.projection_warn_s / max(runs_out_s, 1.0), 3), severity=Severity.WARNING,
            observed=round(rate * 60, 4), expected=round(budget / 60, 4), unit="usd_per_min",
            reason=(f"at ${rate * 60:.2f}/min the ${budget:.0f}/hour budget runs out in "
                    f"{max(runs_out_s, 0) / 60:.1f} min (${hour_spend:.2f} spent in the last hour)"),
            time_s=record.time_s, evidence=evidence_of(record),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "first_time": self.first_time, "last_time": self.last_time, "windows": self.totals.to_state(),
            "hour": [self.hour.index, list(self.hour.slots)], "day": [self.day.index, list(self.day.slots)],
            "price": self.price.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.totals.load_state(state["windows"])
        for ring, (index, slots) in ((self.hour, state["hour"]), (self.day, state["day"])):
            ring.index, ring.slots = index, array("d", slots)
            ring.sum = sum(ring.slots)
            ring._ends = -math.inf
        if "price" in state:  # absent from states saved before price jumps were judged: it learns anew
            self.price.load_state(state["price"])
