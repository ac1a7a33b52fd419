"""Spend leases: reserve before the call, settle after. The service grants an agent an allowance for the
next interval out of what its hourly budget has left, minus what its live leases still hold and what its
returned leases spent that the hour's spend does not show yet, so concurrent calls — from one process or
many — cannot all pass the same budget check (LiteLLM's "check and record are separate steps" overspend).

A lease comes back with its signed balance: what it did not use, or — when calls cost more than their
reservations — a debt, which the next grant carries instead of forgiving. Spend a returned lease declares
stays held until the hour's spend has grown by it (spans arrive, and are judged, a few seconds late), then
counts once; it is never held longer than `hold_s`, by when its spans have been counted. Each grant also
carries the agent's learned p99 call size (`observe`), the guard's estimate for a call with no `max_tokens`.
Pure: time, spans and the hour's spend come in as arguments; lease ids are random (`secrets`).
"""

from __future__ import annotations

import heapq
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.enforcers.call_sizes import CallSizes


class LeaseBookFull(Exception):
    """No room for another live lease: a new one is refused (429), the live ones are kept."""


@dataclass(frozen=True)
class Lease:
    id: str
    agent_id: str
    usd: float
    expires_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Account:
    """Spend an agent's returned leases declared that its hour's spend may not show yet. Signed: spend
    counted before its lease came back is held by that live lease, so it is taken off here until then."""

    spend_seen: float  # the hour's spend at the last grant
    touched_s: float  # the last grant or return
    unreported: float = 0.0
    declared: deque[tuple[float, float]] = field(default_factory=deque)  # (when, USD) returned within hold_s


def new_lease_id() -> str:
    return f"lease-{secrets.token_urlsafe(18)}"


class LeaseBook:
    def __init__(self, lease_s: float = 60.0, max_usd: float = 5.0, max_leases: int = 100_000,
                 hold_s: float | None = None, new_id: Callable[[], str] = new_lease_id) -> None:
        self.lease_s = lease_s
        self.max_usd = max_usd
        self.max_leases = max_leases
        self.hold_s = 2 * lease_s if hold_s is None else hold_s  # > span export delay + the lateness bound
        self.new_id = new_id
        self.outstanding: dict[str, Lease] = {}
        self._by_agent: dict[str, dict[str, Lease]] = {}
        self._expiry: list[tuple[float, str]] = []  # a heap of (expires_s, lease id)
        self.accounts: dict[str, _Account] = {}
        self.sizes = CallSizes()
        self.refused_full = 0
        self._swept_s = float("-inf")

    def observe(self, records: Iterable[SpanRecord]) -> None:
        """Spans received: learn the agents' call sizes."""
        self.sizes.observe(records)

    def held(self, agent_id: str, now_s: float) -> float:
        """What the agent's live leases and unreported returned spend hold back from its budget."""
        self._expire(now_s)
        account = self.accounts.get(agent_id)
        return max(0.0, self._live(agent_id) + (account.unreported if account else 0.0))

    def grant(self, agent_id: str, now_s: float, budget_usd: float | None, spent_usd: float,
              returning: str = "", unused_usd: float = 0.0) -> Lease:
        """A new lease: at most `max_usd`, and no more than the budget has left after the hour's spend
        (`spent_usd`, as counted from the spans received) and what `held` holds back. `returning` hands back
        the agent's previous lease with its balance `unused_usd` (negative: the debt it ran up). Raises
        LeaseBookFull rather than drop live leases."""
        self._expire(now_s)
        self._counted(agent_id, spent_usd, now_s)
        self.give_back(agent_id, returning, unused_usd, now_s)
        left = self.max_usd if budget_usd is None else budget_usd - spent_usd - self.held(agent_id, now_s)
        usd = round(max(0.0, min(self.max_usd, left)), 9)
        if len(self.outstanding) >= self.max_leases:
            self.refused_full += 1
            raise LeaseBookFull(f"{len(self.outstanding)} live leases, the most this service holds; "
                                f"retry within {self.lease_s:.0f} s, as leases expire")
        # Kept even when empty: the refunds of calls still in flight come back through it.
        lease = Lease(self.new_id(), agent_id, usd, now_s + self.lease_s)
        self.outstanding[lease.id] = lease
        self._by_agent.setdefault(agent_id, {})[lease.id] = lease
        heapq.heappush(self._expiry, (lease.expires_s, lease.id))
        return lease

    def give_back(self, agent_id: str, lease_id: str, unused_usd: float, now_s: float) -> None:
        """End `agent_id`'s lease `lease_id` (another agent's, or an unknown one, is ignored): what it
        spent — its amount less the balance, more than its amount when in debt — stays held until counted."""
        lease = self.outstanding.get(lease_id)
        account = self.accounts.get(agent_id)
        if lease is None or lease.agent_id != agent_id or account is None:
            return
        self._drop(lease)
        spent = lease.usd - unused_usd
        account.unreported += spent
        account.touched_s = now_s
        if spent > 0:
            account.declared.append((now_s, spent))

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        """One agent's leases, account and call sizes, for a runtime that saves each agent's state apart (the
        Kafka workers, in the agent's changelogged state). Leases past their time go at the next grant."""
        account = self.accounts.get(agent_id)
        live = self._by_agent.get(agent_id, {}).values()
        return {"leases": [[lease.id, lease.usd, lease.expires_s] for lease in live],
                "account": None if account is None else [account.spend_seen, account.touched_s, account.unreported,
                                                         [list(d) for d in account.declared]],
                "sizes": self.sizes.agent_state(agent_id)}

    def load_agent(self, agent_id: str, state: dict[str, Any]) -> None:
        """Take back what `agent_state` gave (replacing what this book held for the agent)."""
        self.forget_agent(agent_id)
        for lease_id, usd, expires_s in state["leases"]:
            lease = Lease(str(lease_id), agent_id, float(usd), float(expires_s))
            self.outstanding[lease.id] = lease
            self._by_agent.setdefault(agent_id, {})[lease.id] = lease
            heapq.heappush(self._expiry, (lease.expires_s, lease.id))
        if state["account"] is not None:
            seen, touched, unreported, declared = state["account"]
            self.accounts[agent_id] = _Account(float(seen), float(touched), float(unreported),
                                               deque((float(t), float(u)) for t, u in declared))
        if state["sizes"] is not None:
            self.sizes.load_agent(agent_id, state["sizes"])

    def forget_agent(self, agent_id: str) -> None:
        """Drop the agent from memory (its expiry entries go when they fall due)."""
        for lease in list(self._by_agent.get(agent_id, {}).values()):
            self._drop(lease)
        self.accounts.pop(agent_id, None)
        self.sizes.forget_agent(agent_id)

    def _counted(self, agent_id: str, spent_usd: float, now_s: float) -> None:
        """The hour's spend grew since the last grant: that much declared spend is now counted."""
        account = self.accounts.get(agent_id)
        if account is None:
            self.accounts[agent_id] = _Account(spent_usd, now_s)
            return
        grown = spent_usd - account.spend_seen
        if grown > 0:  # spend leaving the hour's window can hide growth: then more stays held (the safe side)
            account.unreported = max(-self._live(agent_id), account.unreported - grown)
        account.spend_seen = spent_usd
        account.touched_s = now_s
        while account.declared and account.declared[0][0] + self.hold_s <= now_s:
            account.declared.popleft()
        # Nothing declared longer than hold_s ago can still be uncounted.
        account.unreported = min(account.unreported, sum(usd for _, usd in account.declared))

    def _live(self, agent_id: str) -> float:
        return sum(lease.usd for lease in self._by_agent.get(agent_id, {}).values())

    def _drop(self, lease: Lease) -> None:
        del self.outstanding[lease.id]
        mine = self._by_agent[lease.agent_id]
        del mine[lease.id]
        if not mine:
            del self._by_agent[lease.agent_id]

    def _expire(self, now_s: float) -> None:
        while self._expiry and self._expiry[0][0] <= now_s:
            _, lease_id = heapq.heappop(self._expiry)
            lease = self.outstanding.get(lease_id)
            if lease is not None:
                self._drop(lease)
        if now_s - self._swept_s >= 1.0:  # idle accounts go, at most once a second
            self._swept_s = now_s
            for agent_id in [a for a, acc in self.accounts.items()
                             if acc.touched_s + self.hold_s <= now_s and a not in self._by_agent]:
                del self.accounts[agent_id]
