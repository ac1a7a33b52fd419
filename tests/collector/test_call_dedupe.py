"""One LLM call, one cost: the rules on records, beside the real-instrumentation tests that exercise them."""

from __future__ import annotations

from spanwarden.collector.call_dedupe import CallDedupe
from spanwarden.collector.span_record import make_record


def _llm(span, parent="", out=250, model="claude-sonnet-4-5", response_id="", **kw):
    return make_record(trace_id="t1", span_id=span, parent_span_id=parent, model=model, operation="chat",
                       span_kind="llm", input_tokens=1500, output_tokens=out, cost_usd=0.007,
                       cost_source="price_table", response_id=response_id, agent_id="a", **kw)


def test_a_parent_reporting_its_child_s_call_is_zeroed_and_names_the_kept_span():
    dedupe = CallDedupe()
    child = dedupe.apply(_llm("c", parent="p"))
    parent = dedupe.apply(_llm("p", model="claude-sonnet-4-5-20250929"))
    assert child.cost_usd == 0.007 and parent.cost_usd == 0 and "duplicate_of:c" in parent.flags
    assert (parent.input_tokens, parent.output_tokens, parent.cost_source) == (0, 0, "duplicate")


def test_different_calls_are_kept_apart():
    dedupe = CallDedupe()
    outputs = [dedupe.apply(_llm("c", parent="p", out=100)), dedupe.apply(_llm("p", out=250)),
               dedupe.apply(_llm("x", parent="p", model="gpt-4o"))]
    assert [r.cost_usd for r in outputs] == [0.007, 0.007, 0.007]


def test_the_same_response_id_of_one_agent_is_one_call_across_traces():
    dedupe = CallDedupe()
    first = dedupe.apply(_llm("s1", response_id="msg_1"))
    second = dedupe.apply(_llm("s2", response_id="msg_1")._replace(trace_id="t2"))
    other_agent = dedupe.apply(_llm("s3", response_id="msg_1")._replace(trace_id="t3", agent_id="b"))
    assert (first.cost_usd, second.cost_usd, other_agent.cost_usd) == (0.007, 0, 0.007)


def test_a_re_sent_span_is_not_a_second_call():
    dedupe = CallDedupe()
    assert dedupe.apply(_llm("s", response_id="m")).cost_usd == dedupe.apply(_llm("s", response_id="m")).cost_usd


def test_agent_usage_is_costed_only_when_no_call_below_reported_it():
    dedupe = CallDedupe()
    dedupe.apply(_llm("c", parent="tool"))
    dedupe.apply(make_record(trace_id="t1", span_id="tool", parent_span_id="agent", tool_name="x"))
    above = dedupe.apply(make_record(trace_id="t1", span_id="agent", span_kind="agent", input_tokens=9,
                                     cost_usd=0.01, operation="invoke_agent"))
    alone = dedupe.apply(make_record(trace_id="t9", span_id="agent", span_kind="agent", input_tokens=9,
                                     cost_usd=0.01, operation="invoke_agent"))
    assert above.cost_usd == 0 and "aggregate_usage" in above.flags
    assert alone.cost_usd == 0.01


def test_memory_is_bounded():
    dedupe = CallDedupe(max_calls=10)
    for i in range(100):
        dedupe.apply(_llm(f"s{i}", parent=f"p{i}", response_id=f"m{i}"))
    assert len(dedupe._calls) == len(dedupe._by_response) == 10 and len(dedupe._children) <= 10
