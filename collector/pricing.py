"""Model pricing: tokens to USD from a versioned price table that a deployment can override.

An unpriced model is charged a configurable default price and reported once, never silently free. Cache
reads and cache writes are billed at their own rates; both are part of the input count (as the GenAI
conventions, OpenInference and the Anthropic SDK report it). Model names are matched the way providers
spell them: dated variants, `provider/model`, Bedrock ids (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`)
and Vertex ones (`claude-sonnet-4-5@20250929`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PER_MILLION = 1e-6
REPORTED_COST_FACTOR = 4.0  # a reported cost within this factor of the table's price is believed
# Bedrock's region and provider prefixes ("us.anthropic."), its version suffix ("-v1:0"), Vertex's "@date".
_BEDROCK_PREFIX = re.compile(r"^(?:(?:us|eu|apac|au|ca|jp|us-gov|global)\.)?(?:anthropic|meta|mistral|amazon|"
                             r"cohere|ai21|openai|deepseek|qwen|writer)\.")
_VERSION_SUFFIX = re.compile(r"(?:(?<=\d{8})-v\d+)?(?::\d+)?$|@.*$")


def model_key(model: str) -> str:
    """The price table's spelling of a model name: lower case, without provider path, Bedrock prefix and
    version suffix ("us.anthropic.claude-sonnet-4-5-20250929-v1:0" -> "claude-sonnet-4-5-20250929")."""
    name = model.strip().lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" and "models/gemini-2.5-pro"
    name = _BEDROCK_PREFIX.sub("", name, count=1)
    return _VERSION_SUFFIX.sub("", name, count=1) or name


class PriceTableError(ValueError):
    """The price file is unreadable or a price is not a non-negative number."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens: fresh input, output, cache reads and cache writes."""

    input: float
    output: float
    cached_input: float
    cache_write: float

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int,
             cache_write_tokens: int = 0) -> float:
        # Cache reads and writes are part of input_tokens (GenAI conventions) and billed at their own rates.
        # When they add up to more than the input count, the instrumentation reported fresh input alone.
        cached, written = cached_tokens, cache_write_tokens
        fresh = input_tokens - cached - written if cached + written <= input_tokens else input_tokens
        return (fresh * self.input + cached * self.cached_input + written * self.cache_write
                + output_tokens * self.output) * _PER_MILLION


class PriceTable:
    """Looks up a model's price by exact name, then by the longest known prefix (dated variants)."""

    def __init__(self, prices: dict[str, ModelPrice], version: str, default: ModelPrice) -> None:
        self.version = version
        self.default = default
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._by_prefix = sorted(self._prices, key=len, reverse=True)
        self._resolved: dict[str, ModelPrice | None] = {}
        self.unpriced_models: set[str] = set()

    def canonical_name(self, model: str) -> str | None:
        """The table's name for a model ("gpt-4o" for "gpt-4o-2024-08-06"), or None when it is not known:
        a bounded set, fit to be a metric tag."""
        name = model_key(model)
        if name in self._prices:
            return name
        return next((p for p in self._by_prefix if name.startswith(p + "-")), None)

    def lookup(self, model: str) -> ModelPrice | None:
        """The model's price, or None when the table does not know it."""
        try:
            return self._resolved[model]
        except KeyError:
            pass
        if len(self._resolved) > 10_000:  # bounded: model names come from untrusted spans
            self._resolved.clear()
        name = model_key(model)
        price = self._prices.get(name)
        if price is None:
            price = next((self._prices[p] for p in self._by_prefix if name.startswith(p + "-")), None)
        self._resolved[model] = price
        return price

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int,
             cache_write_tokens: int = 0) -> tuple[float, bool]:
        """(USD, priced): unpriced models are charged the default price and logged the first time."""
        price = self.lookup(model)
        if price is not None:
            return price.cost(input_tokens, output_tokens, cached_tokens, cache_write_tokens), True
        if model not in self.unpriced_models and len(self.unpriced_models) < 1000:
            self.unpriced_models.add(model)
            log.warning("model %r is not in price table %s; charging the default price", model, self.version)
        return self.default.cost(input_tokens, output_tokens, cached_tokens, cache_write_tokens), False

    @staticmethod
    def plausible(reported: float, table_cost: float) -> bool:
        """Whether a cost an instrumentation reported is believable next to the table's price for the same
        tokens: within REPORTED_COST_FACTOR either way (batch and priority tiers fit; a unit error does not)."""
        if table_cost <= 0:
            return True
        return table_cost / REPORTED_COST_FACTOR <= reported <= table_cost * REPORTED_COST_FACTOR

    @classmethod
    def load(cls, override: Path | None = None, default_price: tuple[float, float] = (10.0, 30.0)) -> PriceTable:
        """The shipped table, with the models of an override file (same format) replacing or adding to it."""
        shipped = json.loads(resources.files("spanwarden.collector").joinpath("prices.json").read_text())
        prices = _parse_models(shipped, "shipped prices.json")
        version = shipped["version"]
        if override is not None:
            try:
                extra = json.loads(Path(override).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise PriceTableError(f"cannot read price file {override}: {exc}") from exc
            prices.update(_parse_models(extra, str(override)))
            version = f"{version}+{extra.get('version', Path(override).name)}"
        default = ModelPrice(default_price[0], default_price[1], default_price[0], default_price[0])
        return cls(prices, version, default)


def _parse_models(doc: Any, source: str) -> dict[str, ModelPrice]:
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise PriceTableError(f"{source}: expected an object with a 'models' mapping")
    out = {}
    for name, entry in doc["models"].items():
        try:
            values = [float(entry[k]) for k in ("input", "output")]
            cached = float(entry.get("cached_input", values[0]))
            written = float(entry.get("cache_write", values[0]))  # providers that bill no writes: input rate
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceTableError(f"{source}: models.{name}: needs numeric 'input' and 'output'") from exc
        if min(*values, cached, written) < 0:
            raise PriceTableError(f"{source}: models.{name}: prices must be >= 0")
        out[name] = ModelPrice(values[0], values[1], cached, written)
    return out
