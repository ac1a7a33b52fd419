"""Each agent's own learned call size: the p99 of prompt and reply tokens per LLM call, from the spans the
service receives, so an agent's guard can estimate a call that does not state its `max_tokens` at the
price of the model it names (a switch to a dearer model is priced as such). Pure; bounded in agents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.quantile_sketch import DecayingLogHistogram

MIN_CALLS = 20  # fewer calls than this say little about a p99


class CallSizes:
    def __init__(self, max_agents: int = 50_000, half_life_calls: float = 2_000) -> None:
        self.max_agents = max_agents
        self.half_life_calls = half_life_calls
        self._sizes: dict[str, tuple[DecayingLogHistogram, DecayingLogHistogram]] = {}

    def observe(self, records: Iterable[SpanRecord]) -> None:
        for record in records:
            if not record.model or not (record.input_tokens or record.output_tokens):
                continue
            sizes = self._sizes.get(record.agent_id)
            if sizes is None:
                if len(self._sizes) >= self.max_agents:
                    continue
                sizes = self._sizes[record.agent_id] = (self._histogram(), self._histogram())
            sizes[0].add(float(record.input_tokens))
            sizes[1].add(float(record.output_tokens))

    def p99(self, agent_id: str) -> tuple[int, int] | None:
        """(prompt tokens, reply tokens) at the agent's p99, once it has made enough calls."""
        sizes = self._sizes.get(agent_id)
        if sizes is None or sizes[0].total < MIN_CALLS:
            return None
        return int(sizes[0].quantile(0.99)), int(sizes[1].quantile(0.99))

    def agent_state(self, agent_id: str) -> dict[str, Any] | None:
        """One agent's sizes, for a runtime that keeps each agent's state apart (the Kafka workers)."""
        sizes = self._sizes.get(agent_id)
        return None if sizes is None else {"input": sizes[0].to_state(), "output": sizes[1].to_state()}

    def load_agent(self, agent_id: str, state: dict[str, Any]) -> None:
        sizes = self._sizes[agent_id] = (self._histogram(), self._histogram())
        sizes[0].load_state(state["input"])
        sizes[1].load_state(state["output"])

    def forget_agent(self, agent_id: str) -> None:
        self._sizes.pop(agent_id, None)

    def _histogram(self) -> DecayingLogHistogram:
        return DecayingLogHistogram(low=1.0, high=1e8, per_decade=8, half_life=self.half_life_calls)
