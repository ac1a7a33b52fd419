"""BaselineScorer: a univariate streaming anomaly scorer for operational metrics, with no per-series tuning.

Each value is scored against what was learned before it (causal), then learned; memory is constant. The
score in [0, 1] is an anomaly likelihood in the style of Numenta's: a raw surprise per point is computed
from three views of the series, and the score says how unusual the recent raw surprise is against the
long-run distribution of raw surprise for this same series, so that a noisy series and a flat one are
judged on their own terms.

The three views, each a robust z-score:
- level: the value against a clipped exponentially weighted mean and mean absolute deviation (outliers are
  clipped before they are learned, so a spike or an incident moves the baseline only slowly);
- change: the step from the previous value against the usual step size (catches a flat line that moves);
- season: the value against what this hour of the day and of the week usually holds, once each has been
  seen a few times (so a daily peak is not an anomaly, while the same value at night is).
The level and season views must both be surprised (the smaller is taken), the change view alone suffices.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

DAY_BINS = 48  # half-hours of the day
SHORT = 5  # points averaged for the recent surprise
_EPS = 1e-9


class _EW:
    """Exponentially weighted mean and mean absolute deviation."""

    __slots__ = ("alpha", "n", "mean", "mad")

    def __init__(self, memory: float) -> None:
        self.alpha, self.n, self.mean, self.mad = 1.0 / memory, 0, 0.0, 0.0

    def z(self, x: float) -> float:
        return abs(x - self.mean) / max(self.mad, 1e-3 * abs(self.mean), _EPS)

    def learn(self, x: float) -> None:
        self.n += 1
        a = max(self.alpha, 1.0 / self.n)
        if self.n == 1:
            self.mean = x
            return
        self.mad += a * (abs(x - self.mean) - self.mad)
        self.mean += a * (x - self.mean)

    def state(self) -> list[float]:
        return [self.n, self.mean, self.mad]

    def load(self, state: list[float]) -> None:
        self.n, self.mean, self.mad = int(state[0]), float(state[1]), float(state[2])


class BaselineScorer:
    """`update(timestamp_s, value) -> score in [0, 1]` (higher = more anomalous)."""

    def __init__(self, warmup: int = 24, fast: float = 24, slow: float = 400, step: float = 48,
                 season_min: int = 3, surprise_memory: float = 1000) -> None:
        self.warmup = warmup
        self.season_min = season_min
        self.fast, self.slow, self.step = _EW(fast), _EW(slow), _EW(step)
        self.day = [_EW(10) for _ in range(DAY_BINS)]
        self.beta = 1.0 / surprise_memory
        self.last_value: float | None = None
        self.last_time: float | None = None
        self.raw_mean = 0.0
        self.raw_var = 1.0
        self.raw_n = 0
        self.recent: deque[float] = deque(maxlen=SHORT)

    def update(self, timestamp_s: float, value: float) -> float:
        if not math.isfinite(value):
            return self._likelihood(None)  # a missing point is scored on what came before, never learned
        if self.last_time is not None and timestamp_s < self.last_time:
            timestamp_s = self.last_time  # a clock that jumped back: treat as now
        raw = self._surprise(timestamp_s, value) if self.slow.n >= 2 else 0.0
        score = self._likelihood(raw) if self.slow.n >= self.warmup else 0.0
        self._learn(timestamp_s, value)
        return score

    def _surprise(self, t: float, x: float) -> float:
        """Surprising to the fast baseline and to the slow or seasonal one, or a jump of unusual size."""
        cell = self.day[_day_bin(t)]
        context = self.slow.z(x) if cell.n < self.season_min else abs(x - cell.mean) / max(
            cell.mad, 0.25 * self.slow.mad, 1e-3 * abs(cell.mean), _EPS)
        assert self.last_value is not None
        jump = abs(abs(x - self.last_value) - self.step.mean) / max(self.step.mad, 1e-3 * abs(self.slow.mean),
                                                                    _EPS)
        return min(max(min(self.fast.z(x), context), 0.5 * jump), 1e6)

    def _likelihood(self, raw: float | None) -> float:
        if raw is not None:
            self.recent.append(math.log1p(raw))
        if not self.recent:
            return 0.0
        short = sum(self.recent) / len(self.recent)
        z = (short - self.raw_mean) / math.sqrt(max(self.raw_var, 1e-6))
        score = 0.5 * math.erfc(-z / math.sqrt(2))  # P(N(0,1) <= z)
        if raw is not None:
            self._learn_surprise(math.log1p(raw))
        return score

    def _learn_surprise(self, value: float) -> None:
        self.raw_n += 1
        beta = max(self.beta, 1.0 / self.raw_n)
        delta = value - self.raw_mean
        self.raw_mean += beta * delta
        self.raw_var = (1 - beta) * (self.raw_var + beta * delta * delta)

    def _learn(self, t: float, x: float) -> None:
        if self.last_value is not None:
            self.step.learn(abs(x - self.last_value))
        self.fast.learn(x)
        self.slow.learn(x)
        self.day[_day_bin(t)].learn(x)
        self.last_value, self.last_time = x, t

    def to_state(self) -> dict[str, Any]:
        return {
            "ew": [self.fast.state(), self.slow.state(), self.step.state()],
            "day": [c.state() for c in self.day], "last": [self.last_value, self.last_time],
            "raw": [self.raw_mean, self.raw_var, self.raw_n], "recent": list(self.recent),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for ew, saved in zip((self.fast, self.slow, self.step), state["ew"], strict=True):
            ew.load(saved)
        for cell, saved in zip(self.day, state["day"], strict=True):
            cell.load(saved)
        self.last_value, self.last_time = state["last"]
        self.raw_mean, self.raw_var, self.raw_n = state["raw"][0], state["raw"][1], int(state["raw"][2])
        self.recent = deque(state["recent"], maxlen=SHORT)


def _day_bin(t: float) -> int:
    return int(t % 86400 // (86400 / DAY_BINS))


