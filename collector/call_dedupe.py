"""One LLM call, one cost: when two instrumentations report the same call, the first report is kept and
the other is zeroed (cost and tokens) with a flag naming the span kept; usage on agent and chain spans
above LLM calls (`invoke_agent`, AGENT, CHAIN) is a sum of those calls and is never costed again.

Two reports are the same call when they carry the same `gen_ai.response.id` for one agent (the Traceloop
Anthropic instrumentation and the Anthropic SDK's own span even sit in different traces), or when one is
the parent of the other, their models agree and so do their output tokens (OpenInference or Pydantic AI
over the SDK's span, openai-v2 under openai-agents). Spans end, and so arrive, children first.
"""

from __future__ import annotations

from typing import NamedTuple

from spanwarden.collector.bounded import BoundedDict
from spanwarden.collector.pricing import model_key
from spanwarden.collector.span_kind import AGGREGATE_KINDS, EMBEDDING, LLM
from spanwarden.collector.span_record import LLM_OPERATIONS, SpanRecord

Key = tuple[str, str]  # (trace id, span id)


class _Call(NamedTuple):
    parent: str
    model: str
    output_tokens: int


def is_llm(r: SpanRecord) -> bool:
    return r.span_kind in (LLM, EMBEDDING) or r.operation in LLM_OPERATIONS or (
        bool(r.model) and r.span_kind not in AGGREGATE_KINDS and not r.tool_name)


def has_usage(r: SpanRecord) -> bool:
    return r.cost_usd > 0 or r.input_tokens > 0 or r.output_tokens > 0


def _same_model(a: str, b: str) -> bool:
    if not a or not b:
        return True
    a, b = model_key(a), model_key(b)
    return a == b or a.startswith(b + "-") or b.startswith(a + "-")


class CallDedupe:
    """Bounded memory of the LLM calls costed lately (`max_calls` of them, oldest forgotten first)."""

    def __init__(self, max_calls: int = 100_000) -> None:
        self._calls: BoundedDict[Key, _Call] = BoundedDict(max_calls)
        self._children: BoundedDict[Key, list[str]] = BoundedDict(max_calls)  # parent -> costed LLM children
        self._by_response: BoundedDict[tuple[str, str], str] = BoundedDict(max_calls)  # -> span id kept
        self._above_calls: BoundedDict[Key, None] = BoundedDict(max_calls)  # spans with costed calls below
        self.duplicates = 0
        self.aggregates = 0

    def apply(self, r: SpanRecord) -> SpanRecord:
        """The record as it should be costed: unchanged, or zeroed as a duplicate or an aggregate."""
        key = (r.trace_id, r.span_id)
        if not (r.cost_usd > 0 or r.input_tokens > 0 or r.output_tokens > 0):  # has_usage, inlined
            if key in self._above_calls:
                self._mark_parent(r)
            return r
        if r.span_kind in AGGREGATE_KINDS:
            if key in self._above_calls:
                self._mark_parent(r)
                self.aggregates += 1
                return _zeroed(r, "aggregate", "aggregate_usage")
            return r  # the only report of what it spent
        if not is_llm(r) or key in self._calls:  # a re-sent span (an export retried) is not a second call
            return r
        kept = self._kept(r, key)
        self._mark_parent(r)
        if kept:
            self.duplicates += 1
            return _zeroed(r, "duplicate", f"duplicate_of:{kept}")
        self._calls[key] = _Call(r.parent_span_id, r.model, r.output_tokens)
        if r.parent_span_id:
            parent_key = (r.trace_id, r.parent_span_id)
            self._children[parent_key] = [*self._children.get(parent_key, ()), r.span_id][-8:]
        if r.response_id:
            self._by_response[(r.agent_id, r.response_id)] = r.span_id
        return r

    def _kept(self, r: SpanRecord, key: Key) -> str:
        """The span id of an earlier report of the same call, or ""."""
        if r.response_id:
            kept = self._by_response.get((r.agent_id, r.response_id))
            if kept is not None:
                return kept
        if r.parent_span_id:
            parent = self._calls.get((r.trace_id, r.parent_span_id))
            if parent is not None and self._matches(parent, r):
                return r.parent_span_id
        for child in self._children.get(key, ()):
            call = self._calls.get((r.trace_id, child))
            if call is not None and self._matches(call, r):
                return child
        return ""

    @staticmethod
    def _matches(call: _Call, r: SpanRecord) -> bool:
        return _same_model(call.model, r.model) and (
            call.output_tokens == r.output_tokens or not call.output_tokens or not r.output_tokens)

    def _mark_parent(self, r: SpanRecord) -> None:
        if r.parent_span_id:
            self._above_calls[(r.trace_id, r.parent_span_id)] = None


def _zeroed(r: SpanRecord, source: str, flag: str) -> SpanRecord:
    return r._replace(cost_usd=0.0, cost_source=source, input_tokens=0, output_tokens=0, cached_tokens=0,
                      cache_write_tokens=0, flags=(*r.flags, flag))
