"""Runaway loops: the *same* call, or a short cycle of the same calls (A, B, A, B ...), repeated many times in a
short window. A call is the same call only when its identity is known: the tool with a hash of its arguments,
the model with a hash of its prompt, or the agent's own `spanwarden.fingerprint`. A tool called without
recorded arguments (the default of every instrumentation) has no identity: calling it often is volume, judged
by `call_volume` against the agent's own call rate, never a loop.

What counts as "many" is learned per agent: the usual number of repeats of its most repeated identical call
per window is kept in a decaying histogram, and a loop must exceed both a fixed floor and a multiple of that,
so an agent whose normal work repeats one identical call (a poller) is judged on its own terms, while an agent
that calls a tool often with varying arguments is still caught the moment one call repeats 20 times.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.quantile_sketch import DecayingLogHistogram


def call_identity(record: SpanRecord) -> str:
    """The identity of the call, or "" when two calls cannot be told apart from different ones (an LLM call
    known by its model alone, a tool without recorded arguments)."""
    fingerprint = record.fingerprint
    if not fingerprint or fingerprint.startswith("llm:"):
        return ""
    tool = record.tool_name
    # fingerprint == f"tool:{tool}", without building the string (this runs for every span)
    if (tool and len(fingerprint) == len(tool) + 5 and fingerprint.startswith("tool:")
            and fingerprint.endswith(tool)):
        return ""
    return fingerprint


@dataclass(frozen=True)
class RunawayLoopConfig:
    window_s: float = 120.0
    max_window_calls: int = 512  # memory bound: only the newest identified calls in the window are kept
    warn_repeats: int = 20
    critical_repeats: int = 60
    learned_multiple: float = 3.0  # ... and this many times the usual most-repeated identical call per window
    member_share: float = 0.5  # a call joins a cycle if it repeats at least half as often as the top call
    member_min: int = 5
    warmup_s: float = 600.0
    half_life_s: float = 3 * 86_400.0


class RunawayLoop:
    """Per-agent detector of one identical call, or a short cycle of identical calls, repeated in a burst."""

    name: ClassVar[str] = "runaway_loop"

    def __init__(self, agent_id: str, config: RunawayLoopConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or RunawayLoopConfig()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.calls: list[tuple[float, str]] = []  # oldest first; short, so a list is smaller than a deque
        # Calls in the window per identity: a plain dict (a Counter's missing key is a Python-level call).
        self.counts: dict[str, int] = {}
        self.window_index: int | None = None
        self.window_peak = 0  # most repeats of one identical call seen in the current window
        self.window_anomalous = False
        self.usual = DecayingLogHistogram(1.0, 1e5, half_life=self.config.half_life_s / self.config.window_s)

    def observe(self, record: SpanRecord) -> Finding | None:
        return self.observe_at(record, record.time_s)

    def observe_at(self, record: SpanRecord, t: float) -> Finding | None:
        """`observe`, with the record's `time_s` already read (`AgentDetectors` reads it once for all)."""
        last = self.last_time
        if last is not None and not t >= last:  # `clean_time`, inline: it runs for every span
            t = last
        if self.first_time is None:
            self.first_time = t  # warm-up counts from the agent's first span, identified or not
        self.last_time = t
        identity = call_identity(record)
        cfg = self.config
        if self.window_index is None or int(t // cfg.window_s) > self.window_index:
            self._roll_window(t)  # else it would change nothing
        if not identity:
            return None
        calls, counts = self.calls, self.counts
        calls.append((t, identity))
        counts[identity] = counts.get(identity, 0) + 1
        drop, oldest = 0, t - cfg.window_s
        while drop < len(calls) and (calls[drop][0] < oldest or len(calls) - drop > cfg.max_window_calls):
            old = calls[drop][1]
            left = counts.get(old, 0) - 1
            if left:
                counts[old] = left
            else:
                del counts[old]
            drop += 1
        if drop:
            del calls[:drop]
        repeats = counts.get(identity, 0)
        if repeats > self.window_peak:
            self.window_peak = repeats
        if repeats * 4 < cfg.warn_repeats:  # under the threshold whatever has been learned (it is at least this)
            return None
        threshold = max(cfg.warn_repeats, cfg.learned_multiple * self.usual.quantile(0.99))
        if repeats * 4 < threshold or t - self.first_time < cfg.warmup_s:
            return None
        top = heapq.nlargest(4, counts.items(), key=itemgetter(1))  # Counter.most_common(4), as it does it
        floor = max(cfg.member_min, cfg.member_share * top[0][1])
        members = [(f, c) for f, c in top if c >= floor]
        looping = sum(c for _, c in members)
        if identity not in dict(members) or looping < threshold:
            return None
        self.window_anomalous = True
        critical = looping >= max(cfg.critical_repeats, threshold * cfg.critical_repeats / cfg.warn_repeats)
        cycle = " ↔ ".join(f for f, _ in members)
        return Finding(
            agent_id=self.agent_id, detector=self.name,
            kind="repeated_call" if len(members) == 1 else "call_cycle", score=round(looping / threshold, 3),
            severity=Severity.CRITICAL if critical else Severity.WARNING, observed=float(looping),
            expected=round(threshold, 2), unit="repeats_per_window",
            reason=(f"made {'the same call' if len(members) == 1 else 'a cycle of the same calls'} {cycle} "
                    f"{looping} times within {cfg.window_s:.0f}s"),
            time_s=record.time_s, evidence=evidence_of(record), subject=cycle,
        )

    def _roll_window(self, t: float) -> None:
        """Learn the most-repeated identical call of each finished window (not of anomalous ones)."""
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
        self.counts = {}
        for _, f in self.calls:
            self.counts[f] = self.counts.get(f, 0) + 1
        self.window_index, self.window_peak, self.window_anomalous = state["window"]
        self.usual.load_state(state["usual"])
