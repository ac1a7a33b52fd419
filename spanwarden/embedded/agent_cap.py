"""A cap on new agent names. Agent names come from span attributes, so whoever may send spans may invent
them, and each name costs memory (baselines, a ladder, metrics) for good. Each principal (an ingest token,
or the anonymous/untrusted sender) may bring at most `per_minute` new names a minute (a token bucket: a
fleet's first minute may bring that many at once), and at most `max_untrusted` `untrusted:` agents exist.
Spans of a name over the cap are not taken in (counted on /metrics); a real new agent gets in once the
bucket refills. The first refusal of each principal is audited (once)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from spanwarden.collector.ingest_auth import is_untrusted
from spanwarden.collector.span_record import SpanRecord

PRINCIPALS_KEPT = 10_000


@dataclass
class Refusal:
    """A principal's first refusal, to audit."""

    principal: str
    agent: str
    why: str


class NewAgentCap:
    def __init__(self, per_minute: int, max_untrusted: int, untrusted_known: int = 0) -> None:
        self.per_minute = per_minute
        self.max_untrusted = max_untrusted
        self.untrusted = untrusted_known  # untrusted agents taken in so far
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # principal -> (tokens, at)
        self._audited: set[str] = set()
        self.refused_records = 0
        self.refused_agents = 0

    def admit(self, principal: str, records: list[SpanRecord], known: Callable[[str], bool],
              now_s: float) -> tuple[list[SpanRecord], list[Refusal]]:
        """The records to take in, and refusals to audit (each principal's first only)."""
        verdict: dict[str, bool] = {}
        refusals: list[Refusal] = []
        for record in records:
            agent = record.agent_id
            if agent in verdict or known(agent):
                continue
            why = self._why_not(principal, agent, now_s)
            verdict[agent] = why is None
            if why is not None:
                self.refused_agents += 1
                if principal not in self._audited and len(self._audited) < PRINCIPALS_KEPT:
                    self._audited.add(principal)
                    refusals.append(Refusal(principal, agent, why))
        if all(verdict.values()):
            return records, refusals
        kept = [r for r in records if verdict.get(r.agent_id, True)]
        self.refused_records += len(records) - len(kept)
        return kept, refusals

    def _why_not(self, principal: str, agent: str, now_s: float) -> str | None:
        if is_untrusted(agent) and self.untrusted >= self.max_untrusted:
            return f"{self.untrusted:,} untrusted agents already (SPANWARDEN_MAX_UNTRUSTED_AGENTS)"
        tokens, at = self._refill(principal, now_s)
        if tokens < 1:
            return (f"more than {self.per_minute:,} new agent names a minute from {principal} "
                    "(SPANWARDEN_NEW_AGENTS_PER_MINUTE)")
        self._buckets[principal] = (tokens - 1, at)
        if is_untrusted(agent):
            self.untrusted += 1
        return None

    def _refill(self, principal: str, now_s: float) -> tuple[float, float]:
        tokens, at = self._buckets.get(principal, (float(self.per_minute), now_s))
        tokens = min(float(self.per_minute), tokens + max(0.0, now_s - at) * self.per_minute / 60)
        self._buckets[principal] = (tokens, now_s)
        self._buckets.move_to_end(principal)
        while len(self._buckets) > PRINCIPALS_KEPT:
            self._buckets.popitem(last=False)
        return tokens, now_s
