"""Spend leases, agent side: before an LLM call the guard reserves its estimated cost (prompt tokens and
`max_tokens` at the model's price) from a lease the service granted; when the span ends, the real cost is
settled and the difference returned. A burst of concurrent calls can then overspend the budget by at most
one call's estimate; when no lease can cover a call, it is refused with `AgentHalted`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests

from spanwarden.collector.halted import AgentHalted
from spanwarden.collector.pricing import PriceTable

DEFAULT_PROMPT_TOKENS = 1_000  # when a call does not say how long its prompt is
DEFAULT_MAX_TOKENS = 1_000


class SpendLease:
    def __init__(self, base_url: str, agent_id: str, prices: PriceTable | None = None,
                 session: requests.Session | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.agent_id = agent_id
        self.prices = prices or PriceTable.load()
        self.session = session or requests.Session()
        self._lock = threading.Lock()
        self.lease_id = ""
        self.available = 0.0
        self.reserved_total = 0.0

    def estimate(self, attributes: Mapping[str, Any]) -> float:
        """What a call may cost at most: its prompt and `max_tokens` at the model's price."""
        model = str(attributes.get("gen_ai.request.model", ""))
        if not model:
            return 0.0
        prompt = _tokens(attributes.get("gen_ai.usage.input_tokens")) or DEFAULT_PROMPT_TOKENS
        completion = _tokens(attributes.get("gen_ai.request.max_tokens")) or DEFAULT_MAX_TOKENS
        return self.prices.cost(model, prompt, completion, 0)[0]

    def actual(self, attributes: Mapping[str, Any]) -> float:
        """What a finished call cost, from the usage its span reports."""
        model = str(attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model") or "")
        if not model:
            return 0.0
        return self.prices.cost(model, _tokens(attributes.get("gen_ai.usage.input_tokens")),
                                _tokens(attributes.get("gen_ai.usage.output_tokens")), 0)[0]

    def reserve(self, estimate: float) -> float:
        """Take `estimate` from the lease, renewing it when short; raise AgentHalted when nothing covers it."""
        if estimate <= 0:
            return 0.0
        with self._lock:  # one renewal at a time: concurrent calls queue here, they never all pass at once
            if self.available < estimate:
                self._renew()
            if self.available < estimate:
                raise AgentHalted(self.agent_id, f"spend lease exhausted: ${estimate:.4f} needed, "
                                  f"${self.available:.4f} granted (hourly budget reached)", "lease", -1)
            self.available -= estimate
            self.reserved_total += estimate
            return estimate

    def settle(self, reserved: float, actual: float) -> None:
        """Return what the call did not spend (or take what it overspent)."""
        with self._lock:
            self.available += reserved - actual

    def _renew(self) -> None:
        try:
            granted = self.session.post(f"{self.base}/v1/leases", timeout=10, json={
                "agent": self.agent_id, "returning": self.lease_id, "unused_usd": max(0.0, self.available)}).json()
            self.lease_id, self.available = str(granted["id"]), float(granted["usd"])
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise AgentHalted(self.agent_id, f"no spend lease could be obtained ({exc})", "guard:lease", -1) \
                from exc


def _tokens(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
