"""Runaway loops: the same call, or a short cycle of calls (A, B, A, B ...), repeated many times in a short
window without progress. A call is identified by its fingerprint (tool + arguments hash, or the agent's own
`spanwarden.fingerprint`).

What counts as "many" is learned per agent: the usual number of repeats of its busiest call per window is
kept in a decaying histogram, and a loop must exceed both a fixed floor and a multiple of that, so an agent
whose normal work repeats a call (a poller, a tool without recorded arguments) is judged on its own terms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import clean_time, evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.quantile_sketch import DecayingLogHistogram


@dataclass(frozen=True)
class RunawayLoopConfig:
    window_s: float = 120.0
    max_window_calls: int = 512  # memory bound: only the newest calls in the window are kept
    warn_repeats: int = 20
    critical_repeats: int = 60
    learned_multiple: float = 3.0  # ... and this many times the usual busiest-call repeats per window
    min_share: float = 0.5  # the looping calls must dominate the window, or it is just a busy agent
    member_share: float = 0.2  # a call takes part in a cycle if it makes this share of the window
    warmup_s: float = 600.0
    half_life_s: float = 3 * 86_400.0


class RunawayLoop:
    """Per-agent detector of one call, or a short cycle of calls, dominating a burst of calls."""

    name: ClassVar[str] = "runaway_loop"

    def __init__(self, agent_id: str, config: RunawayLoopConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or RunawayLoopConfig()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.calls: list[tuple[float, str]] = []  # oldest first; short, so a list is smaller than a deque
        self.counts: Counter[str] = Counter()
        self.window_index: int | None = None
        self.window_peak = 0  # most repeats of one call seen in the current window
        self.window_anomalous = False
        self.usual = DecayingLogHistogram(1.0, 1e5, half_life=self.config.half_life_s / self.config.window_s)

    def observe(self, record: SpanRecord) -> Finding | None:
        if not record.fingerprint or record.fingerprint.startswith("llm:"):
            return None  # an LLM call is identified by its model alone: repeats of it are just work
        t = clean_time(record.time_s, self.last_time)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        cfg = self.config
        self._roll_window(t)
        self.calls.append((t, record.fingerprint))
        self.counts[record.fingerprint] += 1
        drop = 0
        while drop < len(self.calls) and (self.calls[drop][0] < t - cfg.window_s
                                          or len(self.calls) - drop > cfg.max_window_calls):
            old = self.calls[drop][1]
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
            drop += 1
        if drop:
            del self.calls[:drop]
        repeats = self.counts[record.fingerprint]
        self.window_peak = max(self.window_peak, repeats)
        threshold = max(cfg.warn_repeats, cfg.learned_multiple * self.usual.quantile(0.99))
        if repeats * 3 < threshold or t - self.first_time < cfg.warmup_s:
            return None
        members = [(f, c) for f, c in self.counts.most_common(4) if c >= cfg.member_share * len(self.calls)]
        looping = sum(c for _, c in members)
        if record.fingerprint not in dict(members) or looping < threshold or looping < cfg.min_share * len(
                self.calls):
            return None
        self.window_anomalous = True
        critical = looping >= max(cfg.critical_repeats, threshold * cfg.critical_repeats / cfg.warn_repeats)
        cycle = " ↔ ".join(f for f, _ in members)
        return Finding(
            agent_id=self.agent_id, detector=self.name,
            kind="repeated_call" if len(members) == 1 else "call_cycle", score=round(looping / threshold, 3),
            severity=Severity.CRITICAL if critical else Severity.WARNING, observed=float(looping),
            expected=round(threshold, 2), unit="repeats_per_window",
            reason=(f"made {'the same call' if len(members) == 1 else 'a cycle of calls'} {cycle} {looping} "
                    f"times within {cfg.window_s:.0f}s ({looping / len(self.calls):.0%} of its calls)"),
            time_s=record.time_s, evidence=evidence_of(record), subject=cycle,
        )

    def _roll_window(self, t: float) -> None:
        """Learn the busiest-call repeats of each finished window (not of anomalous ones)."""
        index = int(t // self.config.window_s)
        if self.window_index is None:
            self.window_index = index
        elif index > self.window_index:
            if not self.window_anomalous:
                self.usual.add(float(self.window_peak))
            self.window_index, self.window_peak, self.window_anomalous = index, 0, False

    def to_state(self) -> dict[str, Any]:
        return {"first_time": self.first_time, "last_time": self.last_time, "calls": [list(c) for c in self.calls],
                "window": [self.window_index, self.window_peak, self.window_anomalous],
                "usual": self.usual.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.calls = [(float(t), str(f)) for t, f in state["calls"]]
        self.counts = Counter(f for _, f in self.calls)
        self.window_index, self.window_peak, self.window_anomalous = state["window"]
        self.usual.load_state(state["usual"])
