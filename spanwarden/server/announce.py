"""What a person watching `serve` needs in its log: each agent the first time it reports, and each decision
— bounded, so that a flood of new agent names cannot flood the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Decision

log = logging.getLogger("spanwarden")
PER_MINUTE = 20  # new agents named one by one each minute; beyond, a count
MAX_REMEMBERED = 100_000  # past this, agents are no longer announced (the count still is)


class Announcer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seen: set[str] = set()
        self._minute_start = clock()
        self._named = 0
        self._unnamed = 0

    def agents(self, refs: Iterable[AgentRef]) -> None:
        """Announce the agents among `refs` not seen before."""
        for ref in refs:
            if ref.id in self.seen or len(self.seen) >= MAX_REMEMBERED:
                continue
            self.seen.add(ref.id)
            self._roll()
            if self._named < PER_MINUTE:
                self._named += 1
                who = ", ".join(f"{k} {v}" for k, v in (("owner", ref.owner), ("team", ref.team),
                                                         ("environment", ref.environment)) if v)
                log.info("new agent %s%s", ref.id, f" ({who})" if who else "")
            else:
                self._unnamed += 1

    def _roll(self) -> None:
        now = self.clock()
        if now - self._minute_start < 60:
            return
        if self._unnamed:
            log.info("%d more new agents in the last minute (%d known)", self._unnamed, len(self.seen))
        self._minute_start, self._named, self._unnamed = now, 0, 0

    @staticmethod
    def decision(decision: Decision) -> None:
        scope = f" [{decision.scope}]" if decision.scope else ""
        log.info("decision %s%s: %s by %s (v%d): %s", decision.agent_id, scope, decision.action.value,
                 decision.decided_by, decision.version, decision.reason)
