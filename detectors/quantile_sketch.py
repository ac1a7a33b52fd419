"""A decaying log-histogram: a constant-size, serialisable estimate of a non-negative value's upper
quantiles, where old observations fade with a half-life so the baseline follows slow, legitimate change.

Fading is lazy: instead of shrinking every count at every step, new observations are counted with a weight
that grows by 1/decay per step, which leaves relative counts (all a quantile needs) exactly as if every old
count had shrunk; the counts are rescaled now and then to stay in floating-point range. Adding is O(1).

Hot path (every detector adds to one per record or per window): one observation at a time takes a branch
with the same arithmetic as the general case (`decay ** 1` is `decay`, so its faded count is exactly 1);
bin edges are computed once per shape and shared; a quantile scans down from the highest bin ever filled
(the empty bins above it add exactly 0.0) and is cached until the next add.
"""

from __future__ import annotations

import math
from array import array
from functools import lru_cache
from typing import Any

_RESCALE_AT = 1e150


@lru_cache(maxsize=64)
def _edges(low: float, per_decade: int, n_bins: int) -> tuple[float, ...]:
    """`upper_edge(i)` for every bin of one histogram shape (shared by every histogram of that shape)."""
    return tuple(low * 10 ** (i / per_decade) for i in range(n_bins))


class DecayingLogHistogram:
    """Counts of values in log-spaced bins (`per_decade` bins per factor of ten from `low` to `high`),
    plus a bin for zero and one for overflow; each observation fades by `decay` per later step."""

    __slots__ = ("low", "per_decade", "n_bins", "decay", "counts", "growth", "_total", "_cached", "_top",
                 "_edges", "_single")

    def __init__(self, low: float = 1e-4, high: float = 1e4, per_decade: int = 4, half_life: float = 10_000):
        self.low = low
        self.per_decade = per_decade
        self.n_bins = int(round(math.log10(high / low) * per_decade)) + 2
        self.decay = 0.5 ** (1.0 / half_life)
        self.counts = array("d", bytes(8 * self.n_bins))
        self.growth = 1.0  # weight of an observation made now, relative to the stored counts
        self._total = 0.0  # in stored units
        self._cached: tuple[float, float] | None = None
        self._top = -1  # the highest bin added to since the counts were last reset (all above it are 0.0)
        self._edges = _edges(low, per_decade, self.n_bins)
        # One observation fades the others by `decay` itself: the general case's arithmetic, without the power
        # (unless a half-life so short that one step fades everything away, which the general case handles).
        self._single = 1e-100 <= self.decay < 1

    @property
    def total(self) -> float:
        """The faded number of observations."""
        return self._total / self.growth

    @property
    def nonempty(self) -> float:
        """The faded number of observations at or above `low` (windows with something in them)."""
        return (self._total - self.counts[0]) / self.growth

    def _bin(self, value: float) -> int:
        if value < self.low:
            return 0
        return min(1 + int(math.log10(value / self.low) * self.per_decade), self.n_bins - 1)

    def upper_edge(self, index: int) -> float:
        return self.low * 10 ** (index / self.per_decade)

    def add(self, value: float, times: int = 1, weight: float = 1.0) -> None:
        """Learn `value` observed `times` times in a row (e.g. many empty windows), each counting `weight`
        (less than 1 to learn a value more slowly)."""
        if times == 1 and self._single and 0 <= value < math.inf:  # the general case's arithmetic, term by term
            growth = self.growth = self.growth / self.decay
            mass = weight * 1.0 * growth  # steps == (1 - decay) / (1 - decay) == 1.0
            low = self.low
            index = 0 if value < low else min(1 + int(math.log10(value / low) * self.per_decade), self.n_bins - 1)
            self.counts[index] += mass
            self._total += mass
            self._cached = None
            if index > self._top:
                self._top = index
            if growth > _RESCALE_AT or not math.isfinite(growth):
                self._rescale()
            return
        if times <= 0 or not math.isfinite(value) or value < 0:
            return
        if self.decay < 1:
            fade = self.decay ** min(times, 10**9)
            steps = (1 - fade) / (1 - self.decay)  # the faded count of `times` observations
            if fade < 1e-100:  # everything learned before has faded away
                self.counts = array("d", bytes(8 * self.n_bins))
                self._total, self.growth, self._top = 0.0, 1.0, -1
            else:
                self.growth /= fade
        else:
            steps = float(times)
        mass = weight * steps * self.growth
        index = self._bin(value)
        self.counts[index] += mass
        self._total += mass
        self._cached = None
        if index > self._top:
            self._top = index
        if self.growth > _RESCALE_AT or not math.isfinite(self.growth):
            self._rescale()

    def _rescale(self) -> None:
        factor = self.growth
        for i in range(self.n_bins):
            self.counts[i] /= factor
        self._total /= factor
        self.growth = 1.0

    def quantile(self, q: float) -> float:
        """An upper bound on the q-quantile (the upper edge of the bin where it falls)."""
        if self._cached is not None and self._cached[0] == q:
            return self._cached[1]
        result = 0.0
        if self._total > 0:
            tail = (1 - q) * self._total
            acc = 0.0
            edges, counts = self._edges, self.counts
            result = edges[0]
            # Bins above the top hold 0.0: acc stays 0.0 through them and, the tail being >= 0, none is taken.
            for i in range(self._top if tail >= 0 else self.n_bins - 1, -1, -1):
                acc += counts[i]
                if acc > tail:
                    result = edges[i]
                    break
        self._cached = (q, result)
        return result

    def to_state(self) -> dict[str, Any]:
        return {"counts": [c / self.growth for c in self.counts], "total": self.total}

    def load_state(self, state: dict[str, Any]) -> None:
        counts = [float(c) for c in state["counts"]]
        if len(counts) != self.n_bins:
            raise ValueError(f"histogram state has {len(counts)} bins, expected {self.n_bins}")
        self.counts = array("d", counts)
        self.growth = 1.0
        self._total = float(state["total"])
        self._cached = None
        self._top = max((i for i, c in enumerate(counts) if c != 0.0), default=-1)
