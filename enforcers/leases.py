"""Spend leases: reserve before the call, settle after. The service grants an agent an allowance for the
next interval out of what its hourly budget has left, minus what other leases still hold, so concurrent
calls — from one process or many — cannot all pass the same budget check (LiteLLM's "check and record are
separate steps" overspend). Pure: time and the hour's spend come in as arguments."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Lease:
    id: str
    agent_id: str
    usd: float
    expires_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LeaseBook:
    def __init__(self, lease_s: float = 60.0, max_usd: float = 5.0, max_leases: int = 100_000) -> None:
        self.lease_s = lease_s
        self.max_usd = max_usd
        self.max_leases = max_leases
        self.outstanding: dict[str, Lease] = {}
        self._ids = itertools.count(1)

    def held(self, agent_id: str, now_s: float) -> float:
        self._expire(now_s)
        return sum(lease.usd for lease in self.outstanding.values() if lease.agent_id == agent_id)

    def grant(self, agent_id: str, now_s: float, budget_usd: float | None, spent_usd: float,
              returning: str = "", unused_usd: float = 0.0) -> Lease:
        """A new lease: at most `max_usd`, and no more than the budget has left after the hour's spend and
        the agent's other live leases. `returning` hands back what an old lease did not use."""
        self.give_back(returning, unused_usd)
        left = self.max_usd if budget_usd is None else budget_usd - spent_usd - self.held(agent_id, now_s)
        if len(self.outstanding) >= self.max_leases:
            self._expire(float("inf"))  # bounded: under a flood of agents, old leases simply lapse
        lease = Lease(f"lease-{next(self._ids)}", agent_id, round(max(0.0, min(self.max_usd, left)), 6),
                      now_s + self.lease_s)
        if lease.usd > 0:
            self.outstanding[lease.id] = lease
        return lease

    def give_back(self, lease_id: str, unused_usd: float) -> None:
        """Release a lease's unused part now. The used part stays held until the lease would have expired,
        since the spans reporting that spend may not have arrived yet (counted twice for a moment rather
        than not at all)."""
        lease = self.outstanding.get(lease_id)
        if lease is None:
            return
        used = max(0.0, lease.usd - max(0.0, unused_usd))
        if used > 0:
            self.outstanding[lease_id] = Lease(lease.id, lease.agent_id, used, lease.expires_s)
        else:
            del self.outstanding[lease_id]

    def _expire(self, now_s: float) -> None:
        for key in [k for k, lease in self.outstanding.items() if lease.expires_s <= now_s]:
            del self.outstanding[key]
