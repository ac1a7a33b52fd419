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

It also remembers the models the agent calls, so the service can answer a guard that asks, before the first
call to a model the agent has never used, what that model's price would be against the agent's own
(`new_model_multiple`, see `spanwarden/model_gate.py`); a model a human let the agent use (`accept`) is
learned at full weight and not judged while the approval lasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.quantile_sketch import DecayingLogHistogram

OUTPUT_WEIGHT = 4.0
ELEVATED_WEIGHT = 0.05
MAX_MODELS = 64  # models remembered per agent (the least used forgotten past this)


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
        self.models: dict[str, int] = {}  # model (lower case) -> priced calls seen
        self.accepted: dict[str, float] = {}  # model -> until when a human let the agent use it (inf: for good)

    def observe(self, record: SpanRecord, t: float) -> Jump | None:
        price = price_of(record)
        if price is None:
            return None
        cfg = self.config
        self.calls += 1
        model = record.model.lower()
        self._saw(model)
        if self.accepted and self.accepted.get(model, float("-inf")) > t:
            self.history.add(price)
            return None
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

    def _saw(self, model: str) -> None:
        count = self.models.get(model)
        if count is None and len(self.models) >= MAX_MODELS:
            del self.models[min(self.models, key=self.models.__getitem__)]
        self.models[model] = (count or 0) + 1

    def new_model_multiple(self, model: str, price: float) -> float | None:
        """How many times the agent's usual price per weighted token (its upper quantile) a first call to
        `model` at `price` would pay; None while the agent is still learning, for a model it already calls or
        was let use, or when it has no usual price."""
        name = model.lower()
        if self.calls <= self.config.warmup_calls or name in self.models or name in self.accepted:
            return None
        usual = self.history.quantile(self.config.quantile)
        return price / usual if usual > 0 else None

    def accept(self, model: str, until_s: float | None) -> None:
        """A human let the agent use `model` (until `until_s`, or for good)."""
        self.accepted[model.lower()] = float("inf") if until_s is None else until_s
        if len(self.accepted) > MAX_MODELS:
            del self.accepted[min(self.accepted, key=self.accepted.__getitem__)]

    def refuse(self, model: str) -> None:
        self.accepted.pop(model.lower(), None)

    def to_state(self) -> dict[str, Any]:
        return {"history": self.history.to_state(), "calls": self.calls,
                "elevated": [list(e) for e in self.elevated], "models": dict(self.models),
                "accepted": {m: (None if u == float("inf") else u) for m, u in self.accepted.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.history.load_state(state["history"])
        self.calls = int(state["calls"])
        self.elevated = [(float(t), float(c)) for t, c in state["elevated"]]
        # Absent from states saved before models were remembered: they are learned anew.
        self.models = {str(m): int(n) for m, n in state.get("models", {}).items()}
        self.accepted = {str(m): float("inf") if u is None else float(u)
                         for m, u in state.get("accepted", {}).items()}
