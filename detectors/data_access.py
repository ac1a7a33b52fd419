"""Unusual data access: resources outside the agent's learned profile, sensitive ones above all, many new
resources in a short time (enumeration), a never-seen external destination soon after a sensitive read (the
shape of exfiltration), and volume spikes (rows read per window against the agent's own history).

The profile is the set of resources the agent touched during and after warm-up, with counts and first-seen
times, bounded in size (least-used entries are forgotten first, so memory stays bounded however many
distinct resources an agent touches). A new sensitive resource is never learned by itself: it takes a
human approval (enforcers) to add it. Touched before the agent has a profile at all, it is a question for a
reviewer (an info finding, which the policy turns into an access request), not an anomaly: there is nothing
yet to be anomalous against.

New resources are news only once the profile has stopped growing by itself: while the agent still meets its
own resources for the first time — in its first `novel_settle_s` with fewer than `novel_min_touches` touches,
or with a Good-Turing unseen mass (the share of its touches that went to resources touched once) above
`novel_max_unseen` — a few new ones are not a warning. (Sensitive ones are judged on warm-up alone: after it,
one outside the profile is always critical.)
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig


def _rows_windows() -> WindowTotalsConfig:
    # Rows per read are heavy-tailed and reads come in bursts of task steps: as for spend, the minute window
    # only raises critical findings, and a history of few reads is judged ten times more leniently.
    return WindowTotalsConfig(windows_s=(60, 600), floor_per_min=10_000, floor_total=10_000, min_events=2, low=1.0,
                              high=1e10, warn_min_window_s=600, min_nonempty=50, thin_strictness=10.0)


@dataclass(frozen=True)
class DataAccessConfig:
    sensitive_patterns: tuple[str, ...] = ("*pii*", "*secret*", "*credential*", "*payment*", "*ssn*")
    warmup_s: float = 1800.0
    warmup_spans: int = 50
    max_profile: int = 512
    novelty_window_s: float = 600.0
    novel_warn: int = 3  # distinct new resources within the window
    novel_critical: int = 8
    novel_max_unseen: float = 0.05  # the profile is still filling while more touches than this were to one-offs
    novel_min_touches: int = 30  # ... or while, in its first `novel_settle_s`, it has touched resources fewer
    novel_settle_s: float = 86_400.0  # times than this (an agent that touched none for days has a settled profile)
    exfil_window_s: float = 1800.0  # a new external destination this soon after a sensitive read is critical
    external_prefixes: tuple[str, ...] = ("http:",)
    rows: WindowTotalsConfig = field(default_factory=_rows_windows)


@lru_cache(maxsize=32)
def _sensitive_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a resource matches any of the patterns (case-insensitive): one compiled pattern and one
    bounded table of answers per set of patterns, shared by every agent (resources repeat across a fleet)."""
    pattern = re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)", re.IGNORECASE)
    answers: dict[str, bool] = {}

    def matches(resource: str) -> bool:
        answer = answers.get(resource)
        if answer is None:
            if len(answers) >= 16_384:
                answers.clear()
            answer = answers[resource] = pattern.match(resource) is not None
        return answer

    return matches


class DataAccess:
    """Per-agent detector of resources outside the learned profile."""

    name: ClassVar[str] = "data_access"

    def __init__(self, agent_id: str, config: DataAccessConfig | None = None) -> None:
        self.agent_id = agent_id
        self.config: DataAccessConfig
        self._sensitive: Callable[[str], bool]
        self.configure(config or DataAccessConfig())
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.touches = 0
        self.seen = 0
        self.profile: dict[str, list[float]] = {}  # resource -> [count, first_seen]
        self.granted: dict[str, float] = {}  # resources approved until a time (approved for good: not here)
        self.recent_novel: list[tuple[float, str]] = []  # a list: usually empty, and a deque is 600 bytes
        self.sensitive_read_s: float | None = None  # the latest read of a sensitive resource
        self.rows = WindowTotals(self.config.rows)

    def configure(self, config: DataAccessConfig) -> None:
        self.config = config
        self._sensitive = _sensitive_matcher(tuple(config.sensitive_patterns))

    def is_sensitive(self, resource: str) -> bool:
        return self._sensitive(resource)

    def observe(self, record: SpanRecord) -> Finding | None:
        return self.observe_at(record, record.time_s)

    def observe_at(self, record: SpanRecord, t: float) -> Finding | None:
        """`observe`, with the record's `time_s` already read (`AgentDetectors` reads it once for all)."""
        last = self.last_time
        if last is not None and not t >= last:  # `clean_time`, inline: it runs for every span
            t = last
        if self.first_time is None:
            self.first_time = t  # warm-up counts from the agent's first span, touching data or not
        self.last_time = t
        self.seen += 1
        resource = record.resource
        if not resource:
            return None
        self.touches += 1
        self.rows.add(t, float(record.rows))
        sensitive = self._sensitive(resource)
        if sensitive:
            self.sensitive_read_s = t
        known = self.profile.get(resource)
        if known is not None and self.granted and self.granted.get(resource, math.inf) < t:
            del self.profile[resource], self.granted[resource]  # a time-limited approval ran out
            known = None
        if known is not None:
            known[0] += 1
            return self._volume(record, t) if record.rows else None
        cfg = self.config
        warmed = t - self.first_time >= cfg.warmup_s and self.seen > cfg.warmup_spans
        if sensitive and not warmed:
            # Policy, not baseline: a sensitive resource is never granted silently, not even to a new agent; the
            # policy asks a human (an access request) rather than raising an alarm.
            return Finding(
                agent_id=self.agent_id, detector=self.name, kind="sensitive_unreviewed", score=1.0,
                severity=Severity.INFO, observed=1.0, expected=0.0, unit="new_resources_per_window",
                reason=f"touched sensitive resource {resource} before it has a settled profile",
                time_s=record.time_s, evidence=evidence_of(record), subject=resource,
            )
        if not sensitive:
            self._learn(resource, t)
        if not warmed:
            return None
        return self._novel(record, resource, sensitive, t)

    def _novel(self, record: SpanRecord, resource: str, sensitive: bool, t: float) -> Finding:
        cfg = self.config
        recent = self.recent_novel
        stale = next((k for k, (when, _) in enumerate(recent) if when >= t - cfg.novelty_window_s), len(recent))
        del recent[:stale]
        if all(r != resource for _, r in recent):
            recent.append((t, resource))
            if len(recent) > cfg.novel_critical * 4:
                del recent[0]
        distinct = len(recent)
        read_s = self.sensitive_read_s
        if sensitive:
            severity, kind = Severity.CRITICAL, "sensitive_outside_profile"
            why = f"touched sensitive resource {resource} that is not in its profile"
        elif (read_s is not None and t - read_s <= cfg.exfil_window_s
              and resource.startswith(cfg.external_prefixes)):
            severity, kind = Severity.CRITICAL, "exfil_after_sensitive"
            why = f"sent to {resource}, never seen before, {t - read_s:.0f}s after reading a sensitive resource"
        elif distinct >= cfg.novel_warn and self._filling(t):
            severity, kind = Severity.INFO, "novel_resource"
            why = (f"touched {distinct} resources new to it within {cfg.novelty_window_s:.0f}s while its profile "
                   f"is still filling (latest {resource})")
        elif distinct >= cfg.novel_critical:
            severity, kind = Severity.CRITICAL, "enumeration"
            why = f"touched {distinct} resources new to it within {cfg.novelty_window_s:.0f}s (latest {resource})"
        elif distinct >= cfg.novel_warn:
            severity, kind = Severity.WARNING, "novel_resources"
            why = f"touched {distinct} resources new to it within {cfg.novelty_window_s:.0f}s (latest {resource})"
        else:
            severity, kind = Severity.INFO, "novel_resource"
            why = f"touched {resource} for the first time"
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind=kind,
            score=round(max(distinct / cfg.novel_warn, 3.4 if severity is Severity.CRITICAL else 0.0), 3),
            severity=severity,
            observed=float(distinct), expected=0.0, unit="new_resources_per_window", reason=why,
            time_s=record.time_s, evidence=evidence_of(record), subject=resource,
        )

    def _filling(self, t: float) -> bool:
        """Whether the profile is still filling: too few touches, or a Good-Turing estimate of how often the
        agent meets a resource new to it above `novel_max_unseen`, from those it had touched before the novelty
        window (the new ones being judged are left out: they cannot excuse themselves)."""
        cfg = self.config
        before = t - cfg.novelty_window_s
        touches = once = 0.0
        for count, first in self.profile.values():
            if first < before:
                touches += count
                once += count <= 1
        if touches < cfg.novel_min_touches:
            return t - (self.first_time or t) < cfg.novel_settle_s
        return once / touches > cfg.novel_max_unseen

    def _volume(self, record: SpanRecord, t: float) -> Finding | None:
        if t - (self.first_time or t) < self.config.warmup_s:
            return None  # still learning: every window is learned as it is
        spike = self.rows.worst()
        if spike is None:
            return None
        return Finding(
            agent_id=self.agent_id, detector=self.name, kind="volume_spike", score=round(spike.score, 3),
            severity=Severity.CRITICAL if spike.critical else Severity.WARNING, observed=spike.total,
            expected=spike.expected, unit=f"rows_per_{spike.window_s}s",
            reason=(f"read {spike.total:,.0f} rows in {spike.events} reads within {spike.window_s}s; its 99.9th "
                    f"percentile for {spike.window_s}s is {spike.expected:,.0f} (latest {record.resource})"),
            time_s=record.time_s, evidence=evidence_of(record), subject=record.resource,
        )

    def _learn(self, resource: str, t: float) -> None:
        if len(self.profile) >= self.config.max_profile:
            # Forget the least-used quarter at once: amortised O(log n) per new resource, however many
            # distinct resources an agent throws at it.
            keep = sorted(self.profile.items(), key=lambda kv: kv[1][0], reverse=True)
            self.profile = dict(keep[: self.config.max_profile * 3 // 4])
        self.profile[resource] = [1.0, t]

    def allow(self, resource: str, t: float, until_s: float | None = None) -> None:
        """Add a resource to the profile (a human approved it), for good or until `until_s`."""
        self.profile.setdefault(resource, [0.0, t])
        if until_s is None:
            self.granted.pop(resource, None)
        else:
            self.granted[resource] = until_s

    def to_state(self) -> dict[str, Any]:
        return {
            "first_time": self.first_time, "last_time": self.last_time, "touches": self.touches, "seen": self.seen,
            "profile": {r: list(v) for r, v in self.profile.items()},
            "recent_novel": [list(x) for x in self.recent_novel], "rows": self.rows.to_state(),
            "granted": dict(self.granted), "sensitive_read_s": self.sensitive_read_s,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_time, self.last_time = state["first_time"], state["last_time"]
        self.touches, self.seen = int(state["touches"]), int(state["seen"])
        self.profile = {r: [float(v[0]), float(v[1])] for r, v in state["profile"].items()}
        self.recent_novel = [(float(t), str(r)) for t, r in state["recent_novel"]]
        self.rows.load_state(state["rows"])
        self.granted = {str(r): float(u) for r, u in state.get("granted", {}).items()}
        self.sensitive_read_s = state.get("sensitive_read_s")
