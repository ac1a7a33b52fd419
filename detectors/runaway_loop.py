"""Runaway loops: the same call (tool + arguments, or the agent's own fingerprint) repeated many times in a
short window, which is what an agent stuck without progress looks like from its spans."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import clean_time, evidence_of
from spanwarden.detectors.finding import Finding, Severity


@dataclass(frozen=True)
class RunawayLoopConfig:
    window_s: float = 120.0
    max_window_calls: int = 512  # memory bound: only the newest calls in the window are kept
    warn_repeats: int = 20
    critical_repeats: int = 60
    min_share: float = 0.5  # the repeated call must dominate the window, or it is just a busy agent
    warmup_s: float = 600.0


class RunawayLoop:
    """Per-agent detector of one call fingerprint dominating a burst of calls."""

    name: ClassVar[str] = "runaway_loop"

    def __init__(self, agent_id: str, config: RunawayLoopConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or RunawayLoopConfig()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.calls: deque[tuple[float, str]] = deque()
        self.counts: Counter[str] = Counter()

    def observe(self, record: SpanRecord) -> Finding | None:
        if not record.fingerprint or record.fingerprint.startswith("llm:"):
            return None  # an LLM call is identified by its model alone: repeats of it are just work
        t = clean_time(record.time_s, self.last_time)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        cfg = self.config
        self.calls.append((t, record.fingerprint))
        self.counts[record.fingerprint] += 1
        while self.calls and (self.calls[0][0] < t - cfg.window_s or len(self.calls) > cfg.max_window_calls):
            _, old = self.calls.popleft()
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
        repeats = self.counts[record.fingerprint]
        share = repeats / len(self.calls)
        if repeats < cfg.warn_repeats or share < cfg.min_share or t - self.first_time < cfg.warmup_s:
            return None
        critical = repeats >= cfg.critical_repeats
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="repeated_call",
            score=round(repeats / cfg.warn_repeats, 3),
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            observed=float(repeats), expected=float(cfg.warn_repeats), unit="repeats_per_window",
            reason=(f"made the same call {record.fingerprint} {repeats} times within {cfg.window_s:.0f}s "
                    f"({share:.0%} of its calls)"),
            time_s=record.time_s, evidence=evidence_of(record), subject=record.fingerprint,
        )

    def to_state(self) -> dict[str, Any]:
        return {"first_time": self.first_time, "last_time": self.last_time, "calls": [list(c) for c in self.calls]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.calls = deque((float(t), str(f)) for t, f in state["calls"])
        self.counts = Counter(f for _, f in self.calls)
