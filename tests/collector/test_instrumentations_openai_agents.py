"""A real OpenAI Agents SDK run, instrumented by opentelemetry-instrumentation-openai-agents-v2 together with
openai-v2 on the client underneath, against the loopback fake server. The agents instrumentation stamps the
placeholders `gen_ai.agent.id="agent"` / `gen_ai.agent.name="OpenAI Agent"` on every child span, reports
each model call again above openai-v2's span, and copies `server.address=api.openai.com` onto tool spans:
none of that may become an agent, a second cost or a data resource."""

from __future__ import annotations

import pytest

from spanwarden.collector.trace_stage import TraceStage
from tests.collector.fake_llm import OPENAI_USAGE, TOOL, fake_llm
from tests.collector.instrumented import Capture, llm_calls, price, total_cost, unwrap_left_over

openai = pytest.importorskip("openai")
agents = pytest.importorskip("agents")
agents_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_agents")
openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")

from agents.tracing import set_trace_processors  # noqa: E402

ONE_CALL = price("gpt-4o-mini", OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"])


def _run(capture: Capture) -> None:
    unwrap_left_over("")  # a clean client: no wrappers another test left on
    set_trace_processors([])  # no export to OpenAI's own trace backend: only the OTel instrumentation's
    instrumentors = [agents_v2.OpenAIAgentsInstrumentor(), openai_v2.OpenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=capture.provider)
    try:
        with fake_llm() as url:
            agents.set_default_openai_client(openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test",
                                                                max_retries=0))
            agents.set_default_openai_api("chat_completions")

            @agents.function_tool
            def lookup_invoice(invoice: str) -> str:
                return f"{invoice} is paid"

            agent = agents.Agent(name="Billing", instructions="Answer billing questions.", model="gpt-4o-mini",
                                 tools=[lookup_invoice])
            assert agents.Runner.run_sync(agent, "use the tool").final_output == "ok"
    finally:
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()
        set_trace_processors([])


def test_an_openai_agents_run_costs_each_call_once_under_the_service_s_identity():
    capture = Capture({"service.name": "support"})
    _run(capture)
    records = capture.records()
    chats = [r for r in records if r.operation == "chat"]
    assert len(chats) == 4  # two model calls, each reported by both instrumentations
    assert len(llm_calls(records)) == 2
    assert total_cost(records) == pytest.approx(2 * ONE_CALL, abs=1e-12)
    assert sum(r.cost_source == "duplicate" for r in chats) == 2
    tool = next(r for r in records if r.tool_name)
    assert (tool.tool_name, tool.operation, tool.resource) == (TOOL, "execute_tool", "")  # not http:api.openai.com
    assert {r.agent_id for r in records} == {"support"}  # placeholders on the spans never override it
    assert next(r for r in records if r.name == "invoke_agent Billing").agent_name == "Billing"


def test_a_multi_agent_service_gets_the_agent_from_the_invoke_agent_span():
    capture = Capture({"service.name": "support", "spanwarden.multi_agent": True})
    _run(capture)
    records = capture.records()
    by_name = {}
    for r in records:
        by_name.setdefault(r.name, set()).add(r.agent_id)
    assert by_name["invoke_agent Billing"] == by_name[f"execute_tool {TOOL}"] == {"support/Billing"}
    assert by_name["chat gpt-4o-mini"] == {"support/Billing"}
    assert by_name["Agent workflow"] == {"support"}  # above the agent span: the service itself


def test_spans_exported_before_their_agent_span_wait_for_it():
    capture = Capture({"service.name": "support", "spanwarden.multi_agent": True})
    _run(capture)
    normalized = capture.normalized()
    ordered = sorted(normalized, key=lambda r: r.end_ns)  # as a batch exporter sends them: in end order
    cut = next(i for i, r in enumerate(ordered) if r.name == "invoke_agent Billing")
    stage = TraceStage(wait_s=5.0)
    first = stage.process(ordered[:cut], now=10.0)
    assert stage.held > 0 and all(r.agent_id == "support/Billing" for r in first)
    rest = stage.process(ordered[cut:], now=11.0)
    assert stage.held == 0 and len(first) + len(rest) == len(normalized)
    above = {r.span_id for r in ordered[cut:]}  # the agent span and what it runs under
    assert {r.agent_id for r in first + rest if r.span_id not in above} == {"support/Billing"}
    assert sum(r.agent_source == "inherited" for r in rest) == stage.inherited > 0
