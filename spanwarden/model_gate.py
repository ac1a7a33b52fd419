"""Before an agent's first call to a model it has never used: the service's answer to the guard that asks.

A model switch (a cheap model replaced by one ~100x the price at the same call rate) pays dollars a call from
its very first, and those first calls are in flight before any span of them can reach the service: judged
only after the fact, one heavy call can cost more than a whole incident should. So the agent's guard asks
once per new model, at the call's start (`collector/model_gate.py`), and the service answers here.

The model is priced from the price table at its cheapest rate per weighted token (output weighted 4x, as
`detectors/price_jump.py` learns prices): fresh input, or output over 4, whichever is lower — a lower bound
whatever the call's input/output mix — against the agent's own upper price per token. At the price-jump
detector's `warn_multiple` (10x) or more — where its calls would be elevated, and a second one critical — the
call waits for a human as an access request for the model (`model:<name>`), in the environments where access
requests apply: a deliberate upgrade is approved once (the model joins the agent's profile and its calls
become its normal price) instead of being halted after two calls; a switch nobody meant is denied before it
has cost anything (the agent's calls to that model stay refused). Below that, for an agent still learning
its prices, or for a model the table does not know, the call goes and the price-jump detector judges the
calls as they are made.
"""

from __future__ import annotations

from spanwarden.collector.pricing import PriceTable
from spanwarden.detectors.agent_detectors import AgentDetectors
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.price_jump import OUTPUT_WEIGHT

PREFIX = "model:"
KIND = "new_model_price"


def resource(model: str) -> str:
    """The access request's resource for a model (and the scope of the decisions that hold its calls)."""
    return f"{PREFIX}{model}"


def is_model(resource_name: str) -> bool:
    return resource_name.startswith(PREFIX)


def cheapest_rate(prices: PriceTable, model: str) -> float | None:
    """USD per weighted token a call to `model` pays at least, or None when the table does not know it."""
    price = prices.lookup(model)
    if price is None:
        return None
    rate = min(price.input, price.output / OUTPUT_WEIGHT) * 1e-6
    return rate if rate > 0 else None


def judge(bank: AgentDetectors, model: str, prices: PriceTable, now_s: float) -> Finding | None:
    """The finding that holds a first call to `model`, or None when the call may go."""
    rate = cheapest_rate(prices, model)
    if rate is None:
        return None
    jump = bank.cost.price
    multiple = jump.new_model_multiple(model, rate)
    if multiple is None or multiple < jump.config.warn_multiple:
        return None
    usual = rate / multiple
    return Finding(
        agent_id=bank.agent_id, detector="cost_velocity", kind=KIND,
        score=round(multiple / jump.config.warn_multiple, 3), severity=Severity.WARNING,
        observed=round(rate * 1e6, 4), expected=round(usual * 1e6, 4), unit="usd_per_million_tokens",
        reason=(f"a first call to {model}, at least ${rate * 1e6:.2f} per million tokens: {multiple:.0f}x its "
                f"usual ${usual * 1e6:.3f}"),
        time_s=now_s, subject=resource(model),
    )
