"""Error bursts: errors among the agent's recent calls against its own error rate, judged by a binomial tail
probability rather than a fixed count, with a retry storm on one tool called out by name.

"Recent" is the last `window_calls` calls no older than `max_age_s`, so a busy agent is judged over seconds
and a quiet one over its last few dozen calls: a burst is seen at any call rate. Calls are learned only as
they leave that window, and not while a burst is in progress, so a burst that builds slowly cannot raise
the baseline it is judged against. Wrapper spans (`invoke_agent`) are not calls and are not counted.

Errors are not independent: a client that retries a failed call with backoff turns one failure into up to
four errors within seconds. So the retries of a call (the same tool, with the same arguments when they are
recorded, failing again within `retry_window_s`) count as one failure, up to `max_retries` of them: past
that, every further error counts, since retrying without end is itself the storm.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from scipy.special import bdtrc

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.finding import Finding, Severity


@dataclass(frozen=True)
class ErrorBurstConfig:
    window_calls: int = 64
    max_age_s: float = 600.0  # a burst that ended ten minutes ago is over, however few calls came since
    prior_errors: float = 1.0  # a new agent is assumed to fail about 1 call in 50
    prior_calls: float = 50.0
    half_life_calls: float = 5_000.0
    warn_tail: float = 1e-6
    critical_tail: float = 1e-12
    min_errors_warn: int = 5
    min_errors_critical: int = 10
    warmup_calls: int = 100
    warmup_s: float = 1800.0
    retry_window_s: float = 60.0
    max_retries: int = 3


WRAPPERS = frozenset({"invoke_agent", "create_agent"})


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
        # The recent calls, as a ring: time, and the failing tool ("-" when none is named), "" for success.
        self.times = array("d", bytes(8 * self.config.window_calls))
        self.failed: list[str] = [""] * self.config.window_calls
        self.head = 0  # index of the oldest call
        self.size = 0
        self.counted = array("b", bytes(self.config.window_calls))  # 1: an error that counts as a failure
        self.recent_errors = 0
        self.in_burst = False
        self.chains: dict[str, tuple[float, int]] = {}  # call -> (latest error, errors in a row)

    def observe(self, record: SpanRecord) -> Finding | None:
        return self.observe_at(record, record.time_s)

    def observe_at(self, record: SpanRecord, t: float) -> Finding | None:
        """`observe`, with the record's `time_s` already read (`AgentDetectors` reads it once for all)."""
        cfg = self.config
        if record.operation in WRAPPERS:
            return None
        last = self.last_time
        if last is not None and not t >= last:  # `clean_time`, inline: it runs for every span
            t = last
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        self.seen += 1
        n = cfg.window_calls
        while self.size and (self.size == n or self.times[self.head] < t - cfg.max_age_s):
            failed = bool(self.counted[self.head])
            self.head = (self.head + 1) % n
            self.size -= 1
            self.recent_errors -= failed
            if not self.in_burst:
                self.errors = self.errors * self.decay + failed
                self.calls = self.calls * self.decay + 1
        slot = (self.head + self.size) % n
        self.times[slot] = t
        self.failed[slot] = (record.tool_name or "-") if record.is_error else ""
        counts = record.is_error and not self._is_retry(record, t)
        self.counted[slot] = counts
        self.size += 1
        self.recent_errors += counts
        if not counts:
            return None
        finding = None
        if self.seen > cfg.warmup_calls and t - self.first_time >= cfg.warmup_s:
            finding = self._score(record, self.errors / self.calls)
        self.in_burst = finding is not None
        return finding

    def _is_retry(self, record: SpanRecord, t: float) -> bool:
        """Whether this error is one of the first `max_retries` retries of a call that just failed."""
        cfg = self.config
        key = record.fingerprint or f"{record.operation}:{record.tool_name or record.model}"
        latest, in_row = self.chains.get(key, (float("-inf"), 0))
        in_row = in_row + 1 if t - latest <= cfg.retry_window_s else 1
        if len(self.chains) >= 64:  # bounded: forget chains that have gone quiet
            self.chains = {k: v for k, v in self.chains.items() if v[0] >= t - cfg.retry_window_s}
        self.chains[key] = (t, in_row)
        return 1 < in_row <= cfg.max_retries + 1

    def _score(self, record: SpanRecord, rate: float) -> Finding | None:
        cfg = self.config
        errors, calls = self.recent_errors, self.size
        if errors < cfg.min_errors_warn:
            return None
        tail = float(bdtrc(errors - 1, calls, min(max(rate, 1e-6), 1 - 1e-6)))
        if tail > cfg.warn_tail:
            return None
        critical = tail <= cfg.critical_tail and errors >= cfg.min_errors_critical
        recent = self._recent()
        tools = Counter(tool for _, tool in recent if tool and tool != "-")
        kind, storm, subject = "error_burst", "", ""
        if tools:
            subject, count = tools.most_common(1)[0]
            if count >= 0.8 * errors:
                kind, storm = "retry_storm", f"; {count} of them on tool {subject!r}"
            else:
                subject = ""
        span_s = recent[-1][0] - recent[0][0]
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind=kind,
            score=round(-math.log10(max(tail, 1e-300)) / -math.log10(cfg.warn_tail), 3),
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            observed=round(errors / calls, 4), expected=round(rate, 4), unit="error_fraction",
            reason=(f"{errors} errors in its last {calls} calls ({span_s:.0f}s) against a usual error rate of "
                    f"{rate:.1%} (chance {tail:.1e}){storm}"),
            time_s=record.time_s, evidence=evidence_of(record), subject=subject,
        )

    def _recent(self) -> list[tuple[float, str]]:
        n = self.config.window_calls
        return [(self.times[(self.head + k) % n], self.failed[(self.head + k) % n]) for k in range(self.size)]

    def _counted(self) -> list[int]:
        n = self.config.window_calls
        return [self.counted[(self.head + k) % n] for k in range(self.size)]

    def to_state(self) -> dict[str, Any]:
        return {
            "errors": self.errors, "calls": self.calls, "seen": self.seen, "first_time": self.first_time,
            "last_time": self.last_time, "recent": [list(x) for x in self._recent()], "in_burst": self.in_burst,
            "counted": self._counted(), "chains": {k: list(v) for k, v in self.chains.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.errors, self.calls = float(state["errors"]), float(state["calls"])
        self.seen, self.first_time, self.last_time = int(state["seen"]), state["first_time"], state["last_time"]
        recent = state["recent"][-self.config.window_calls:]
        counted = state.get("counted", [int(bool(tool)) for _, tool in state["recent"]])
        counted = counted[-self.config.window_calls:]
        self.head, self.size = 0, len(recent)
        for k, ((t, tool), c) in enumerate(zip(recent, counted, strict=True)):
            self.times[k], self.failed[k], self.counted[k] = float(t), str(tool), int(c)
        self.recent_errors = sum(counted)
        self.chains = {str(k): (float(v[0]), int(v[1])) for k, v in state.get("chains", {}).items()}
        self.in_burst = bool(state["in_burst"])
