"""Error bursts: errors in a sliding window against the agent's own error rate, judged by a binomial tail
probability rather than a fixed count, with a retry storm on one tool called out by name."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from scipy.special import bdtrc

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import clean_time, evidence_of
from spanwarden.detectors.finding import Finding, Severity


@dataclass(frozen=True)
class ErrorBurstConfig:
    window_s: float = 60.0
    buckets: int = 12
    prior_errors: float = 1.0  # a new agent is assumed to fail about 1 call in 50
    prior_calls: float = 50.0
    half_life_calls: float = 5_000.0
    warn_tail: float = 1e-6
    critical_tail: float = 1e-12
    min_errors_warn: int = 5
    min_errors_critical: int = 10
    min_fraction_critical: float = 0.5
    warmup_calls: int = 100
    warmup_s: float = 1800.0


class ErrorBurst:
    """Per-agent detector of error rates far above the agent's baseline."""

    name: ClassVar[str] = "error_burst"

    def __init__(self, agent_id: str, config: ErrorBurstConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or ErrorBurstConfig()
        self.decay = 0.5 ** (1 / self.config.half_life_calls)
        self.errors = self.config.prior_errors  # decayed counts: the learned error rate
        self.calls = self.config.prior_calls
        self.seen = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.bucket_s = self.config.window_s / self.config.buckets
        self.ring: list[list[Any]] = []  # [bucket_index, errors, calls, Counter(tool -> errors)]

    def observe(self, record: SpanRecord) -> Finding | None:
        t = clean_time(record.time_s, self.last_time)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        self.seen += 1
        bucket = self._bucket(t)
        bucket[2] += 1
        if record.is_error:
            bucket[1] += 1
            if record.tool_name:
                bucket[3][record.tool_name] += 1
        errors = sum(b[1] for b in self.ring)
        calls = sum(b[2] for b in self.ring)
        rate = self.errors / self.calls
        finding = None
        warmed = self.seen > self.config.warmup_calls and t - self.first_time >= self.config.warmup_s
        if warmed and record.is_error:
            finding = self._score(record, errors, calls, rate)
        if finding is None:  # anomalous windows stay out of the baseline
            self.errors = self.errors * self.decay + record.is_error
            self.calls = self.calls * self.decay + 1
        return finding

    def _bucket(self, t: float) -> list[Any]:
        index = int(t // self.bucket_s)
        oldest = index - self.config.buckets + 1
        self.ring = [b for b in self.ring if b[0] >= oldest]
        if not self.ring or self.ring[-1][0] != index:
            self.ring.append([index, 0, 0, Counter()])
        return self.ring[-1]

    def _score(self, record: SpanRecord, errors: int, calls: int, rate: float) -> Finding | None:
        cfg = self.config
        if errors < cfg.min_errors_warn:
            return None
        tail = float(bdtrc(errors - 1, calls, min(max(rate, 1e-6), 1 - 1e-6)))
        if tail > cfg.warn_tail:
            return None
        critical = (tail <= cfg.critical_tail and errors >= cfg.min_errors_critical
                    and errors / calls >= cfg.min_fraction_critical)
        surprise = -math.log10(max(tail, 1e-300))
        tools: Counter[str] = Counter()
        for b in self.ring:
            tools.update(b[3])
        storm = ""
        kind = "error_burst"
        if tools:
            tool, count = tools.most_common(1)[0]
            if count >= 0.8 * errors:
                storm, kind = f"; {count} of them retries of tool {tool!r}", "retry_storm"
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind=kind,
            score=round(surprise / -math.log10(cfg.warn_tail), 3),
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            observed=round(errors / calls, 4), expected=round(rate, 4), unit="error_fraction",
            reason=(f"{errors} errors in {calls} calls within {cfg.window_s:.0f}s against a usual error rate "
                    f"of {rate:.1%} (chance {tail:.1e}){storm}"),
            time_s=record.time_s, evidence=evidence_of(record), subject=storm and tools.most_common(1)[0][0],
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "errors": self.errors, "calls": self.calls, "seen": self.seen, "first_time": self.first_time,
            "last_time": self.last_time,
            "ring": [[b[0], b[1], b[2], dict(b[3])] for b in self.ring],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.errors, self.calls = float(state["errors"]), float(state["calls"])
        self.seen, self.last_time = int(state["seen"]), state["last_time"]
        self.first_time = state["first_time"]
        self.ring = [[int(b[0]), int(b[1]), int(b[2]), Counter(b[3])] for b in state["ring"]]
