"""Price jumps: an agent's calls suddenly priced far above anything it pays per token (a switch to a model
~100x the price at the same call rate), judged call by call against the agent's own learned price per token
rather than waiting for its hourly spend to show it.

The price of a call is its cost over its tokens, output weighted 4x (the usual output:input price ratio), so
a call's size and its input/output mix barely move it: a heavy-tailed token count is not a price jump, a new
price tier is. The learned price is a decaying histogram of the agent's calls; a call at `warn_multiple` or
more times its upper quantile is elevated. One elevated call warns; a second within `window_s`, or a single
one at `critical_multiple`, is critical once the elevated calls have cost at least `floor_usd` (a price jump
on pennies is not an incident). Elevated calls are learned at a twentieth of the weight, so a new model that
stays (after a human has let it) becomes the agent's normal price over a few hundred calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.quantile_sketch import DecayingLogHistogram

OUTPUT_WEIGHT = 4.0
ELEVATED_WEIGHT = 0.05


@dataclass(frozen=True)
class PriceJumpConfig:
    quantile: float = 0.999
    warn_multiple: float = 10.0
    critical_multiple: float = 20.0
    window_s: float = 3600.0
    floor_usd: float = 0.25  # elevated calls must have cost this much before the jump is critical
    warmup_calls: int = 50
    half_life_calls: float = 5_000.0


@dataclass(frozen=True)
class Jump:
    multiple: float  # the call's price over the learned upper quantile
    critical: bool
    calls: int  # elevated calls within the window, this one included
    spent: float  # what they cost
    price: float  # USD per million weighted tokens: this call's ...
    usual: float  # ... and the learned upper quantile


def price_of(record: SpanRecord) -> float | None:
    """USD per weighted token of one priced LLM call, or None when it has no price."""
    weighted = record.input_tokens + OUTPUT_WEIGHT * record.output_tokens
    cost = record.cost_usd
    if not record.model or weighted <= 0 or not math.isfinite(cost) or cost <= 0:
        return None
    return cost / weighted


class PriceJump:
    def __init__(self, config: PriceJumpConfig | None = None) -> None:
        self.config = config or PriceJumpConfig()
        self.history = DecayingLogHistogram(1e-10, 1e-2, per_decade=8, half_life=self.config.half_life_calls)
        self.calls = 0
        self.elevated: list[tuple[float, float]] = []  # (time, cost) of elevated calls within the window

    def observe(self, record: SpanRecord, t: float) -> Jump | None:
        price = price_of(record)
        if price is None:
            return None
        cfg = self.config
        self.calls += 1
        if self.calls <= cfg.warmup_calls:
            self.history.add(price)
            return None
        usual = self.history.quantile(cfg.quantile)
        multiple = price / usual if usual > 0 else 0.0
        if multiple < cfg.warn_multiple:
            self.history.add(price)
            return None
        self.history.add(price, weight=ELEVATED_WEIGHT)
        self.elevated = [(when, cost) for when, cost in self.elevated if when >= t - cfg.window_s]
        self.elevated.append((t, record.cost_usd))
        del self.elevated[:-64]
        spent = sum(cost for _, cost in self.elevated)
        critical = spent >= cfg.floor_usd and (len(self.elevated) >= 2 or multiple >= cfg.critical_multiple)
        return Jump(multiple, critical, len(self.elevated), spent, price * 1e6, usual * 1e6)

    def to_state(self) -> dict[str, Any]:
        return {"history": self.history.to_state(), "calls": self.calls,
                "elevated": [list(e) for e in self.elevated]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.history.load_state(state["history"])
        self.calls = int(state["calls"])
        self.elevated = [(float(t), float(c)) for t, c in state["elevated"]]
