"""Behaviour shift: each minute of an agent's activity as a vector (calls, errors, spend, rows, distinct
resources, distinct tools), relative to that agent's own usual levels, scored by an isolation forest fitted
on the relative vectors of the whole fleet. It catches combinations no single-number detector sees: the
usual number of calls, but ten times the rows from twice the tables, say.

A minute the forest isolates unusually fast, or in which some feature goes well past anything in the
fleet's training minutes (`excess`, in log units: an isolation score saturates at the edge of the training
range and cannot tell "just past it" from "far past it"), is an info finding: audited, shown as context,
never acted on. Measured on `spanwarden eval`, raising it to a warning cost far more precision than it
added recall (the single-signal detectors already catch the injected incidents), so it stays advisory.

The forest is shared and fitted outside the stream (see `spanwarden.model_refit`); the detector only keeps
its agent's running levels and the minute being filled, so its own state stays small. A minute is judged
when it closes (at the agent's next span), and vectors of normal minutes are handed out for the next fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.isolation_model import IsolationModel

FEATURES = ("calls", "errors", "usd", "rows", "resources", "tools")
_SCALE = (1.0, 1.0, 100.0, 1.0, 1.0, 1.0)  # spend in cents, so that its log spreads like the counts


@dataclass(frozen=True)
class BehaviourConfig:
    window_s: float = 60.0
    memory_windows: float = 1440.0  # the agent's usual levels: an exponential average over about a day
    warmup_windows: int = 60
    max_distinct: int = 64  # distinct resources/tools counted per minute, at most
    excess: float = 1.0  # e-fold past the largest training value of a feature


class Behaviour:
    """Per-agent minute vectors against the agent's own levels; scored by a shared `IsolationModel`."""

    name: ClassVar[str] = "behaviour"

    def __init__(self, agent_id: str, config: BehaviourConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config = config or BehaviourConfig()
        self.model: IsolationModel | None = None  # shared, set by the runtime; not part of the state
        self.last_time: float | None = None
        self.index: int | None = None
        # The minute being filled: calls, errors, usd, rows (plain floats: a list's items are boxed, and this
        # runs for every span).
        self.calls = 0.0
        self.errors = 0.0
        self.usd = 0.0
        self.rows = 0.0
        self.resources: set[str] = set()
        self.tools: set[str] = set()
        self._evidence: tuple[str, ...] = ()
        # The latest span with data in it, formatted as evidence only when asked for (a finding, a snapshot):
        # formatting it at every span was a tenth of this detector's time.
        self._evidence_trace = ""
        self._evidence_span: str | None = None
        self.levels = [0.0] * len(FEATURES)  # exponential average of log1p(feature)
        self.windows = 0
        self.normal_vectors: list[list[float]] = []  # handed out for fitting, then cleared by the runtime

    @property
    def current(self) -> list[float]:
        """The minute being filled: calls, errors, usd, rows."""
        return [self.calls, self.errors, self.usd, self.rows]

    @property
    def evidence(self) -> tuple[str, ...]:
        """Evidence of the minute being filled: its latest span that read or touched data."""
        if self._evidence_span is not None:
            span, self._evidence_span = self._evidence_span, None
            self._evidence = (f"{self._evidence_trace}/{span}",) if span else ()
        return self._evidence

    @evidence.setter
    def evidence(self, value: tuple[str, ...]) -> None:
        self._evidence, self._evidence_span = value, None

    def observe(self, record: SpanRecord) -> Finding | None:
        return self.observe_at(record, record.time_s)

    def observe_at(self, record: SpanRecord, t: float) -> Finding | None:
        """`observe`, with the record's `time_s` already read (`AgentDetectors` reads it once for all)."""
        last = self.last_time
        if last is not None and not t >= last:  # `clean_time`, inline: it runs for every span
            t = last
        self.last_time = t
        config = self.config
        index = int(t // config.window_s)
        finding = None
        if self.index is not None and index > self.index:
            finding = self._close(record)
        self.index = index
        self.calls += 1
        self.errors += record.is_error
        cost = record.cost_usd
        self.usd += cost if 0 < cost < math.inf else 0.0
        self.rows += record.rows
        resource = record.resource
        if resource and len(self.resources) < config.max_distinct:
            self.resources.add(resource)
        tool = record.tool_name
        if tool and len(self.tools) < config.max_distinct:
            self.tools.add(tool)
        if record.rows or resource:
            self._evidence_trace, self._evidence_span = record.trace_id, record.span_id
        return finding

    def _close(self, record: SpanRecord) -> Finding | None:
        raw = (self.calls, self.errors, self.usd, self.rows, float(len(self.resources)), float(len(self.tools)))
        log1p = math.log1p
        logs = [log1p(v * s) for v, s in zip(raw, _SCALE, strict=True)]
        relative = [v - level for v, level in zip(logs, self.levels, strict=True)]
        finding = None
        if self.model is not None and self.windows >= self.config.warmup_windows:
            score, excess = self.model.score(relative), self.model.excess(relative)
            if score > self.model.threshold or excess >= self.config.excess:
                finding = self._finding(record, raw, score, excess)
        if finding is None:
            self._learn(logs)
            if self.windows >= self.config.warmup_windows:
                if len(self.normal_vectors) >= 4:  # bounded when nobody collects them (the runtime does)
                    del self.normal_vectors[0]
                self.normal_vectors.append(relative)
        self.calls = self.errors = self.usd = self.rows = 0.0
        if self.resources:
            self.resources.clear()
        if self.tools:
            self.tools.clear()
        return finding

    def _learn(self, logs: list[float]) -> None:
        self.windows += 1
        alpha = max(1.0 / self.config.memory_windows, 1.0 / self.windows)
        self.levels = [level + alpha * (v - level) for level, v in zip(self.levels, logs, strict=True)]

    def _finding(self, record: SpanRecord, raw: tuple[float, ...], score: float, excess: float) -> Finding:
        usual = [math.expm1(level) / s for level, s in zip(self.levels, _SCALE, strict=True)]
        ratios = sorted(((r * k + 1) / (u * k + 1), name, r, u)
                        for name, r, u, k in zip(FEATURES, raw, usual, _SCALE, strict=True))
        top = ratios[-1]
        assert self.model is not None
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="unusual_minute",
            score=round(max(score / self.model.threshold, excess / self.config.excess), 3), observed=top[2],
            severity=Severity.INFO,
            expected=round(top[3], 3), unit=top[1],
            reason=("a minute unlike its usual ones: " + ", ".join(
                f"{name} {r:,.4g} (usually {u:,.3g})" for _, name, r, u in reversed(ratios[-3:]))
                    + f"; isolation score {score:.2f} (unusual above {self.model.threshold:.2f}), "
                    f"{max(excess, 0):.1f} log units past the fleet's largest such minute"),
            time_s=record.time_s, evidence=self.evidence,
        )

    def to_state(self) -> dict[str, Any]:
        return {"last_time": self.last_time, "index": self.index, "current": list(self.current),
                "resources": sorted(self.resources), "tools": sorted(self.tools), "levels": list(self.levels),
                "windows": self.windows, "evidence": list(self.evidence)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.last_time, self.index, self.windows = state["last_time"], state["index"], int(state["windows"])
        self.calls, self.errors, self.usd, self.rows = (float(v) for v in state["current"])
        self.resources, self.tools = set(state["resources"]), set(state["tools"])
        self.levels = [float(v) for v in state["levels"]]
        self.evidence = tuple(state["evidence"])
