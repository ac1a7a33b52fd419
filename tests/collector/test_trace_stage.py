"""The trace stage's state is bounded and its output follows only the records' order and the clock given."""

from __future__ import annotations

import random

import pytest

from spanwarden.collector.span_record import make_record
from spanwarden.collector.trace_stage import TraceStage


def _trace(t: int) -> list:
    """An agent span over a chat call (reported twice) and a tool call, children first."""
    tid = f"{t:032x}"
    common = {"trace_id": tid, "agent_id": "support"}
    return [
        make_record(span_id="c2", parent_span_id="c1", model="gpt-4o", operation="chat", span_kind="llm",
                    input_tokens=10, output_tokens=5, cost_usd=0.1, agent_source="inherit", **common),
        make_record(span_id="c1", parent_span_id="a", model="gpt-4o", operation="chat", span_kind="llm",
                    input_tokens=10, output_tokens=5, cost_usd=0.1, agent_source="inherit", **common),
        make_record(span_id="t", parent_span_id="a", tool_name="search", agent_source="inherit", **common),
        make_record(span_id="a", parent_span_id="", operation="invoke_agent", span_kind="agent",
                    agent_name=f"agent-{t % 3}", agent_source="agent_span", **common),
    ]


def test_a_replay_gives_the_same_records():
    records = [r for t in range(50) for r in _trace(t)]
    random.Random(7).shuffle(records)
    batches = [records[i:i + 17] for i in range(0, len(records), 17)]

    def run() -> list:
        stage = TraceStage(wait_s=3.0)
        out = []
        for n, batch in enumerate(batches):
            out += stage.process(batch, now=float(n))
        return out + stage.expire(1e9)

    first, second = run(), run()
    assert first == second and len(first) == len(records)


def test_the_agent_span_s_name_reaches_every_span_below_and_the_call_is_costed_once():
    out = TraceStage().process(_trace(1), now=0.0)
    assert {r.agent_id for r in out} == {"support/agent-1"}
    assert sum(r.cost_usd for r in out) == pytest.approx(0.1)


def test_known_spans_are_bounded():
    stage = TraceStage(max_spans=100, max_calls=100)
    for t in range(500):
        stage.process(_trace(t), now=0.0)
    assert len(stage._spans) == 100 and stage.held == 0


def test_a_negative_wait_is_refused():
    with pytest.raises(ValueError, match="wait_s must be >= 0"):
        TraceStage(wait_s=-1)
