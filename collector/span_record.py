"""SpanRecord: the one normalised span every later layer reads.

A NamedTuple rather than a frozen dataclass: it is built once per span on the ingest hot path, where a
tuple is several times cheaper to construct, and it is just as immutable.
"""

from __future__ import annotations

from typing import NamedTuple

UNKNOWN_AGENT = "unknown"


class SpanRecord(NamedTuple):
    """One finished span, reduced to what detection, enforcement and audit need."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    is_error: bool
    error_type: str
    agent_id: str
    owner: str
    team: str
    environment: str
    agent_version: str
    operation: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    cost_source: str
    tool_name: str
    resource: str
    rows: int
    bytes: int
    fingerprint: str
    conversation_id: str
    flags: tuple[str, ...]
    # When the service received the span (seconds since the epoch, the service's clock); 0.0 when unknown (a
    # simulator, a replay): then the event time is taken as it is.
    received_s: float = 0.0
    # What the trace stage and `audit explain` read (collector/agent_identity.py, collector/trace_stage.py).
    cache_write_tokens: int = 0
    span_kind: str = ""  # llm, embedding, tool, agent, chain, ... (collector/span_kind.py)
    response_id: str = ""  # gen_ai.response.id: the same call reported by two instrumentations
    agent_name: str = ""  # the stable name of the agent span this span is (or is under)
    agent_source: str = ""  # where agent_id came from: explicit, resource, service, agent_span, inherited, ...
    # What the operation did (collector/effects.py): read | write | destructive | "" (nothing said), a summary
    # without literals ("DELETE FROM customers without WHERE", "POST files.example.org/upload"), and the
    # approval it went out under, as the guard stamped it ("req-…", "ar-…"; "denied:req-…" when refused).
    effect: str = ""
    effect_summary: str = ""
    approval: str = ""

    @property
    def time_s(self) -> float:
        """End time in seconds since the epoch: the moment detectors and policies reason about."""
        return self.end_ns / 1e9

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    @property
    def is_llm_call(self) -> bool:
        return bool(self.model) or self.operation in LLM_OPERATIONS

    @property
    def is_write(self) -> bool:
        """It changed something: a write or a destructive operation (refused ones did not run)."""
        return self.effect in ("write", "destructive") and not self.approval.startswith(REFUSED)

    @property
    def is_tool_call(self) -> bool:
        return bool(self.tool_name) or self.operation == "execute_tool"


REFUSED = "denied:"  # the prefix of `approval` when the guard refused the operation before it ran
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})


def make_record(**fields: object) -> SpanRecord:
    """Build a record from keyword fields, defaulting the rest: for tests, simulators and other sources."""
    values = dict(_DEFAULTS)
    unknown = set(fields) - set(values)
    if unknown:
        raise TypeError(f"unknown SpanRecord fields: {sorted(unknown)}")
    values.update(fields)
    return SpanRecord(**values)  # type: ignore[arg-type]


_DEFAULTS: dict[str, object] = {
    "trace_id": "", "span_id": "", "parent_span_id": "", "name": "", "start_ns": 0, "end_ns": 0,
    "is_error": False, "error_type": "", "agent_id": UNKNOWN_AGENT, "owner": "", "team": "",
    "environment": "", "agent_version": "", "operation": "", "provider": "", "model": "",
    "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0, "cost_source": "none",
    "tool_name": "", "resource": "", "rows": 0, "bytes": 0, "fingerprint": "", "conversation_id": "",
    "flags": (), "received_s": 0.0, "cache_write_tokens": 0, "span_kind": "", "response_id": "",
    "agent_name": "", "agent_source": "", "effect": "", "effect_summary": "", "approval": "",
}
