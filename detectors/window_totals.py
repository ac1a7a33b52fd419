"""Totals per time window (spend, rows read, ...) at several window sizes, each against a decaying histogram
of that window's past totals: the shared core of the volume-style detectors.

A window is anomalous when its total reaches a multiple of the learned upper quantile (and a floor, and a
minimum number of events, so one expensive call or a few rows never page anyone). Anomalous windows are not
learned, and windows above both a tenth of the floor and the learned quantile are learned at a twentieth of
the weight, so a slow creep cannot drag the upper tail up with it; a window is scored while it fills, so a
spike is seen in seconds. Critical takes the critical multiple of the quantile and twice the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spanwarden.detectors.quantile_sketch import DecayingLogHistogram

TAIL_WEIGHT = 0.05


@dataclass(frozen=True)
class WindowTotalsConfig:
    windows_s: tuple[int, ...] = (10, 60, 600)
    quantile: float = 0.999
    warn_multiple: float = 3.0
    critical_multiple: float = 10.0
    floor_per_min: float = 0.05  # totals below this rate never count as a spike ...
    floor_total: float = 1.0  # ... nor below this total in any one window (a few heavy calls close together)
    min_events: int = 2  # priced calls in the window: a single call, however dear, is never a spike
    half_life_s: float = 3 * 86_400.0
    low: float = 1e-4  # histogram range, in the total's unit
    high: float = 1e4
    min_history: float = 0.0  # a window's own history is thin until it has learned this many windows ...
    min_nonempty: float = 0.0  # ... and this many with something in them (a sparse agent's are mostly empty)
    thin_strictness: float = math.inf  # a thin history judges with levels this many times higher (inf: not at all)
    warn_min_window_s: int = 0  # shorter windows only raise critical findings (one or two heavy calls fill them)


@dataclass(frozen=True)
class Spike:
    score: float  # in multiples of the warning level
    critical: bool
    window_s: int
    total: float
    events: int
    expected: float  # the learned upper quantile of this window's total


class _Window:
    __slots__ = ("seconds", "index", "total", "events", "anomalous", "history", "closes")

    def __init__(self, seconds: int, config: WindowTotalsConfig) -> None:
        self.seconds = seconds
        self.index: int | None = None
        self.total = 0.0
        self.events = 0
        self.anomalous = False
        self.history = DecayingLogHistogram(config.low, config.high, half_life=config.half_life_s / seconds)
        # A time before this one is still in window `index`: its end less one float step, so that rounding can
        # never put the bound past the end (times from it on are checked exactly by `advance`).
        self.closes = -math.inf

    def advance(self, t: float, quantile: float, floor: float) -> None:
        index = int(t // self.seconds)
        if self.index is None:
            self._at(index)
            return
        if index <= self.index:
            self._at(self.index)  # still the same window (the bound was unknown: a state just loaded)
            return
        history = self.history
        if not self.anomalous:
            # Only a window that matters (past a tenth of the floor) and exceeds the learned quantile is learned
            # slowly: a sparse agent's quantile of mostly empty windows must still be able to rise to its busy
            # ones. (The cheapest of these side-effect-free tests first.)
            high = (self.total > floor and history.total > 100 and self.total > history.quantile(quantile))
            history.add(self.total, weight=TAIL_WEIGHT if high else 1.0)
        empty = index - self.index - 1
        if empty:  # idle windows are normal too; capped so a year-long gap costs O(bins)
            history.add(0.0, min(empty, 1_000_000))
        self.total, self.events, self.anomalous = 0.0, 0, False
        self._at(index)

    def _at(self, index: int) -> None:
        self.index = index
        self.closes = math.nextafter((index + 1) * self.seconds, -math.inf)


class WindowTotals:
    """Add amounts as they happen; `worst()` scores the windows now filling."""

    __slots__ = ("config", "windows", "_closes")

    def __init__(self, config: WindowTotalsConfig | None = None) -> None:
        self.config = config or WindowTotalsConfig()
        self.windows = [_Window(w, self.config) for w in self.config.windows_s]
        self._closes = -math.inf  # before this time no window closes (below every window's end, rounding aside)

    def add(self, t: float, amount: float) -> None:
        counts = amount > 0
        if t < self._closes:  # the common case: every window still filling, and adding nothing changes nothing
            if amount:
                for window in self.windows:
                    window.total += amount
                    window.events += counts
            return
        config = self.config
        closes = math.inf
        for window in self.windows:
            if t >= window.closes:  # else `advance` would change nothing
                window.advance(t, config.quantile, config.floor_total / 10)
            window.total += amount
            window.events += counts
            if window.closes < closes:
                closes = window.closes
        self._closes = closes

    def worst(self, reference: WindowTotals | None = None, strictness: float = 1.0) -> Spike | None:
        """The most anomalous window now filling, if any reaches the warning level. Judged against this
        object's own history (and the window is then kept out of it: call this only once the caller's warm-up
        is over), or against a `reference` history (a peer prior) with levels `strictness` times higher, in
        which case nothing is kept out of this object's own learning."""
        cfg = self.config
        worst: Spike | None = None
        histories = None if reference is None else {w.seconds: w.history for w in reference.windows}
        for window in self.windows:
            if window.events < cfg.min_events:
                continue
            history = window.history if histories is None else histories.get(window.seconds)
            if history is None:
                continue
            strict = strictness
            if reference is None and (history.total < cfg.min_history or history.nonempty < cfg.min_nonempty):
                if math.isinf(cfg.thin_strictness):
                    continue  # too few of its own windows yet to say what is unusual (six 10-minute windows)
                strict *= cfg.thin_strictness
            floor = max(cfg.floor_per_min * window.seconds / 60, cfg.floor_total)
            if window.total < floor * strict * 0.999:
                continue  # under the floor, the level's least (the common case): its score is below 1
            expected = history.quantile(cfg.quantile)
            level = max(expected * cfg.warn_multiple, floor) * strict
            score = window.total / level
            if score < 1:
                continue
            if reference is None:
                window.anomalous = True
            # The floors say what is too small to matter at all; past twice them, how far the window is from
            # the agent's own baseline decides the severity (a switch to a model 100x the price is critical).
            critical = window.total >= max(expected * cfg.critical_multiple, 2 * floor) * strict
            if not critical and window.seconds < cfg.warn_min_window_s:
                continue
            if worst is None or score > worst.score:
                worst = Spike(score, critical, window.seconds, window.total, window.events, expected)
        return worst

    @classmethod
    def pooled(cls, peers: list[WindowTotals], config: WindowTotalsConfig) -> WindowTotals:
        """A reference whose histories weigh each peer's normalised history equally (a peer-group prior)."""
        prior = cls(config)
        for window in prior.windows:
            pooled = [0.0] * window.history.n_bins
            for peer in peers:
                theirs = next((w.history for w in peer.windows if w.seconds == window.seconds), None)
                if theirs is None or theirs.total <= 0 or theirs.n_bins != window.history.n_bins:
                    continue
                state = theirs.to_state()
                for i, count in enumerate(state["counts"]):
                    pooled[i] += count / state["total"]
            window.history.load_state({"counts": pooled, "total": sum(pooled)})
        return prior

    def to_state(self) -> list[dict[str, Any]]:
        return [{"seconds": w.seconds, "index": w.index, "total": w.total, "events": w.events,
                 "anomalous": w.anomalous, "history": w.history.to_state()} for w in self.windows]

    def load_state(self, state: list[dict[str, Any]]) -> None:
        by_size = {w["seconds"]: w for w in state}
        for window in self.windows:
            saved = by_size.get(window.seconds)
            if saved is None:  # a window size added by configuration since: it starts learning now
                continue
            window.index, window.total, window.events = saved["index"], saved["total"], saved["events"]
            window.closes = -math.inf
            window.anomalous = saved["anomalous"]
            window.history.load_state(saved["history"])
        self._closes = -math.inf
