"""A decaying log-histogram: a constant-size, serialisable estimate of a non-negative value's upper
quantiles, where old observations fade with a half-life so the baseline follows slow, legitimate change."""

from __future__ import annotations

import math
from typing import Any


class DecayingLogHistogram:
    """Counts of values in log-spaced bins (`per_decade` bins per factor of ten from `low` to `high`),
    plus a bin for zero; every observation first multiplies all counts by the per-step decay."""

    def __init__(self, low: float = 1e-4, high: float = 1e4, per_decade: int = 4, half_life: float = 10_000):
        self.low = low
        self.per_decade = per_decade
        self.n_bins = int(round(math.log10(high / low) * per_decade)) + 2  # zero bin + overflow bin
        self.decay = 0.5 ** (1.0 / half_life)
        self.counts = [0.0] * self.n_bins
        self.total = 0.0

    def _bin(self, value: float) -> int:
        if value < self.low:
            return 0
        index = 1 + int(math.log10(value / self.low) * self.per_decade)
        return min(index, self.n_bins - 1)

    def upper_edge(self, index: int) -> float:
        if index == 0:
            return self.low
        return self.low * 10 ** (index / self.per_decade)

    def add(self, value: float, times: int = 1, weight: float = 1.0) -> None:
        """Learn `value` observed `times` times in a row (e.g. many empty windows) in O(bins), each counting
        `weight` (less than 1 to learn a value more slowly)."""
        if times <= 0 or not math.isfinite(value) or value < 0:
            return
        fade = self.decay**times
        weight *= (1 - fade) / (1 - self.decay) if self.decay < 1 else float(times)
        counts = self.counts
        for i in range(self.n_bins):
            counts[i] *= fade
        counts[self._bin(value)] += weight
        self.total = self.total * fade + weight

    def quantile(self, q: float) -> float:
        """An upper bound on the q-quantile (the upper edge of the bin where it falls)."""
        if self.total <= 0:
            return 0.0
        tail = (1 - q) * self.total
        acc = 0.0
        for i in range(self.n_bins - 1, -1, -1):
            acc += self.counts[i]
            if acc > tail:
                return self.upper_edge(i)
        return self.upper_edge(0)

    def to_state(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "total": self.total}

    def load_state(self, state: dict[str, Any]) -> None:
        counts = [float(c) for c in state["counts"]]
        if len(counts) != self.n_bins:
            raise ValueError(f"histogram state has {len(counts)} bins, expected {self.n_bins}")
        self.counts = counts
        self.total = float(state["total"])
