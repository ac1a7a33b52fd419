"""Spend leases, agent side: before an LLM call the guard reserves its estimated cost from a lease the
service granted; when the span ends, the real cost is settled and the difference returned — or owed.

The estimate is the prompt (its size when the client call is known, `call_limits.py`) and the reply's bound
(`max_tokens`, from the span's attributes at start or the client call) at the model's price; a call that
states no bound is estimated at the agent's own p99 call size (learned by the service, or by this guard from
its last calls) and is *unbounded*. Admission: a call goes while the lease has anything left — the last one
may overdraw it by its own cost — and otherwise waits for the calls in flight to settle (or refuses when
none are). The balance, debts included, goes back with each renewal, and the service carries it into the
next grant, so with bounded calls the budget is exceeded by at most one call's actual cost. Unbounded calls
go one at a time until a call has settled within its reservation (and again after one did not): a first
burst of replies far larger than the estimate cannot all be in flight at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from spanwarden.collector.call_limits import CallLimits
from spanwarden.collector.halted import AgentHalted
from spanwarden.collector.pricing import PriceTable

DEFAULT_PROMPT_TOKENS = 1_000  # when nothing says how long a prompt is
DEFAULT_MAX_TOKENS = 1_000  # nor how long a reply may be
DRY_RETRY_S = 1.0  # after a renewal that granted nothing, ask again no sooner (unless a call settles)


@dataclass(frozen=True)
class Reservation:
    usd: float
    model: str
    prompt_tokens: int
    bounded: bool  # the reply's length is capped by the call (max_tokens)
    stated_prompt: bool = False  # the prompt size came from the span or the client call


class SpendLease:
    def __init__(self, base_url: str, agent_id: str, prices: PriceTable | None = None,
                 session: requests.Session | None = None, wait_s: float = 120.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.base = base_url.rstrip("/")
        self.agent_id = agent_id
        self.prices = prices or PriceTable.load()
        self.session = session or requests.Session()
        self.wait_s = wait_s
        self.monotonic = monotonic
        self._cond = threading.Condition()
        self.lease_id = ""
        self.available = 0.0  # the lease's balance after what calls in flight reserved; negative: a debt
        self.expires_at = 0.0  # on `monotonic`, a little before the service lets the lease lapse
        self.in_flight = 0
        self.unbounded_in_flight = 0
        self.trusted = False  # unbounded estimates have held (or the service knows the agent's p99)
        self._overshot = False
        self.service_p99: tuple[int, int] | None = None
        self._recent: deque[tuple[int, int]] = deque(maxlen=100)  # (prompt, reply) tokens of settled calls
        self._largest = (0, 0)
        self._typical_size = (DEFAULT_PROMPT_TOKENS, DEFAULT_MAX_TOKENS)
        self._dry_until = 0.0
        self.reserved_total = 0.0
        self.renewals = 0
        self.last_reservation: Reservation | None = None

    # -- estimates ---------------------------------------------------------------------------------------
    def call(self, attributes: Mapping[str, Any], limits: CallLimits | None = None) -> Reservation | None:
        """What a call about to start may cost, or None when it names no model (nothing to price)."""
        model = str(attributes.get("gen_ai.request.model", ""))
        if not model:
            return None
        prompt = _tokens(attributes.get("gen_ai.usage.input_tokens")) or (limits.prompt_tokens if limits else 0)
        stated = bool(prompt)
        bound = _tokens(attributes.get("gen_ai.request.max_tokens")) or (
            limits.max_output_tokens if limits and limits.max_output_tokens else 0)
        typical_prompt, typical_reply = self._typical()
        reply = bound or typical_reply
        prompt = prompt or typical_prompt
        return Reservation(self.prices.cost(model, prompt, reply, 0)[0], model, prompt, bool(bound), stated)

    def refined(self, reservation: Reservation, limits: CallLimits) -> Reservation:
        """The same call's estimate once the client call's own limits are known."""
        prompt = reservation.prompt_tokens if reservation.stated_prompt else (
            limits.prompt_tokens or reservation.prompt_tokens)
        reply = limits.max_output_tokens or self._typical()[1]
        return Reservation(self.prices.cost(reservation.model, prompt, reply, 0)[0], reservation.model, prompt,
                           bool(limits.max_output_tokens), reservation.stated_prompt or bool(limits.prompt_tokens))

    def estimate(self, attributes: Mapping[str, Any]) -> float:
        """The USD a call with these attributes would reserve."""
        found = self.call(attributes)
        return found.usd if found else 0.0

    def actual(self, attributes: Mapping[str, Any]) -> float:
        """What a finished call cost, from the usage its span reports."""
        model = str(attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model") or "")
        if not model:
            return 0.0
        return self.prices.cost(model, _tokens(attributes.get("gen_ai.usage.input_tokens")),
                                _tokens(attributes.get("gen_ai.usage.output_tokens")), 0)[0]

    def _typical(self) -> tuple[int, int]:
        """The agent's own p99 call size: the service's, or the largest of this guard's last calls."""
        return self._typical_size

    def _learn(self, prompt: int, reply: int) -> None:
        """Keep the last calls' sizes and the typical size they give (called holding the condition)."""
        evicted = self._recent.popleft() if len(self._recent) == self._recent.maxlen else None
        self._recent.append((prompt, reply))
        largest = self._largest
        if evicted is not None and (evicted[0] >= largest[0] or evicted[1] >= largest[1]):
            largest = (max(p for p, _ in self._recent), max(r for _, r in self._recent))
        self._largest = (max(largest[0], prompt), max(largest[1], reply))
        self._update_typical()

    def _update_typical(self) -> None:
        service = self.service_p99 or (0, 0)
        self._typical_size = (max(self._largest[0], service[0]) or DEFAULT_PROMPT_TOKENS,
                              max(self._largest[1], service[1]) or DEFAULT_MAX_TOKENS)

    # -- reserve and settle ------------------------------------------------------------------------------
    def reserve(self, call: Reservation | None) -> Reservation | None:
        """Take the call's estimate from the lease; block while calls in flight may free some; raise
        AgentHalted when nothing can cover it."""
        if call is None or call.usd <= 0:
            return None
        deadline = self.monotonic() + self.wait_s
        with self._cond:
            while True:
                now = self.monotonic()
                serialised = not call.bounded and not self.trusted and self.unbounded_in_flight > 0
                if not serialised:
                    call = self._repriced(call)  # what the calls settled while it waited say
                    if now >= self.expires_at or (self.available < call.usd and now >= self._dry_until):
                        self._renew()
                    if self.available > 0:  # enough, or the last call: it may overdraw by its own cost
                        self._take(call)
                        return call
                    if self.in_flight == 0:
                        raise AgentHalted(self.agent_id, f"spend lease exhausted: ${call.usd:.4f} needed, "
                                          f"${max(0.0, self.available):.4f} granted (hourly budget reached)",
                                          "lease", -1)
                left = deadline - now
                if left <= 0:
                    raise AgentHalted(self.agent_id, f"spend lease: waited {self.wait_s:.0f} s for calls in "
                                      "flight to settle; the budget is still spoken for", "lease", -1)
                self._cond.wait(min(left, DRY_RETRY_S))

    def _repriced(self, call: Reservation) -> Reservation:
        """An unbounded call's estimate at the agent's typical size as known now."""
        if call.bounded:
            return call
        prompt, reply = self._typical()
        prompt = call.prompt_tokens if call.stated_prompt else prompt
        return Reservation(self.prices.cost(call.model, prompt, reply, 0)[0], call.model, prompt, False,
                           call.stated_prompt)

    def exchange(self, held: Reservation, better: Reservation) -> Reservation | None:
        """Swap a reservation for a better estimate of the same call; the old one is released first, so
        when the new one cannot be covered (AgentHalted) nothing stays reserved."""
        self._release(held, 0.0)
        return self.reserve(better)

    def settle(self, reservation: Reservation, attributes: Mapping[str, Any]) -> None:
        """The call ended: charge what it really cost (its span's usage), learn its size."""
        actual = self.actual(attributes)
        prompt = _tokens(attributes.get("gen_ai.usage.input_tokens"))
        reply = _tokens(attributes.get("gen_ai.usage.output_tokens"))
        with self._cond:
            if prompt or reply:
                self._learn(prompt, reply)
                if not reservation.bounded:  # only an unbounded call tells whether unbounded estimates hold
                    self._overshot = actual > reservation.usd * 1.000001
                    self.trusted = not self._overshot
            self._release(reservation, actual)

    def _take(self, call: Reservation) -> None:
        self.last_reservation = call
        self.available -= call.usd
        self.reserved_total += call.usd
        self.in_flight += 1
        self.unbounded_in_flight += 0 if call.bounded else 1

    def _release(self, reservation: Reservation, actual: float) -> None:
        with self._cond:
            self.available += reservation.usd - actual
            self.in_flight -= 1
            self.unbounded_in_flight -= 0 if reservation.bounded else 1
            self._dry_until = 0.0
            self._cond.notify_all()

    def _renew(self) -> None:
        """Return the lease with its signed balance and take a new one (called holding the condition)."""
        self.renewals += 1
        try:
            response = self.session.post(f"{self.base}/v1/leases", timeout=10, json={
                "agent": self.agent_id, "returning": self.lease_id, "unused_usd": self.available})
            if response.status_code >= 400:
                raise requests.HTTPError(f"{response.status_code}: {_message(response)}")
            granted = response.json()
            self.lease_id, self.available = str(granted["id"]), float(granted["usd"])
            ttl = float(granted.get("ttl_s") or 60.0)
            p99 = (granted.get("p99_input_tokens"), granted.get("p99_output_tokens"))
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise AgentHalted(self.agent_id, f"no spend lease could be obtained ({exc})", "guard:lease", -1) \
                from exc
        now = self.monotonic()
        self.expires_at = now + ttl - min(5.0, ttl / 10)
        self._dry_until = now + DRY_RETRY_S if self.available <= 0 else 0.0
        if p99[0] is not None and p99[1] is not None:
            self.service_p99 = (int(p99[0]), int(p99[1]))
            self._update_typical()
            self.trusted = self.trusted or not self._overshot


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text[:200]


def _tokens(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
