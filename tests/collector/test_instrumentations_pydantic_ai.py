"""A real Pydantic AI agent (its own OTel instrumentation) on the real Anthropic client (whose SDK spans are
on too) against the loopback fake server: the tool it ran, each model call costed once (Pydantic AI's
`operation.cost` beside the SDK's span), the agent span's aggregated usage never costed again, and the
agent identity — the service's, or `<service>/<agent>` for a service that hosts several agents, inherited
by every span under the agent span in-process or within the service's bounded wait."""

from __future__ import annotations

import pytest

from spanwarden.collector.trace_stage import TraceStage
from tests.collector.fake_llm import TOOL, fake_llm
from tests.collector.instrumented import Capture, llm_calls, total_cost

anthropic = pytest.importorskip("anthropic")
pydantic_ai = pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.anthropic import AnthropicModel  # noqa: E402
from pydantic_ai.models.instrumented import InstrumentationSettings  # noqa: E402
from pydantic_ai.providers.anthropic import AnthropicProvider  # noqa: E402

ONE_CALL = (1000 * 3.0 + 400 * 0.30 + 100 * 3.75 + 250 * 15.0) / 1e6  # claude-sonnet-4-5, as the server bills


def _run_agent(capture: Capture, name: str = "billing") -> None:
    Agent.instrument_all(InstrumentationSettings(tracer_provider=capture.provider))
    try:
        with fake_llm() as url:
            client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test", max_retries=0,
                                              open_telemetry={"tracer_provider": capture.provider})
            agent = Agent(AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(anthropic_client=client)),
                          name=name)

            @agent.tool_plain
            def lookup_invoice(invoice: str) -> str:
                return f"{invoice} is paid"

            assert agent.run_sync("use the tool").output == "ok"
    finally:
        Agent.instrument_all(False)


def test_a_pydantic_ai_run_costs_each_model_call_once_and_names_its_tool():
    capture = Capture({"service.name": "billing-svc"})
    _run_agent(capture)
    records = capture.records()
    names = [r.name for r in records]
    assert "invoke_agent billing" in names and f"execute_tool {TOOL}" in names
    assert sum(1 for r in records if r.model == "claude-sonnet-4-5" and r.span_kind == "llm") == 4  # 2 x 2 spans
    costed = llm_calls(records)
    assert len(costed) == 2 and total_cost(records) == pytest.approx(2 * ONE_CALL, abs=1e-12)
    assert round(total_cost(records), 2) == 0.01
    tool = next(r for r in records if r.tool_name)
    assert (tool.tool_name, tool.operation) == (TOOL, "execute_tool") and tool.fingerprint.startswith("tool:")
    agent_span = next(r for r in records if r.operation == "invoke_agent")
    assert agent_span.cost_usd == 0 and agent_span.input_tokens == 0  # gen_ai.aggregated_usage: not a call
    assert {r.agent_id for r in records} == {"billing-svc"}  # one service, one agent: the service's name
    assert agent_span.agent_name == "billing"
    assert all(r.conversation_id for r in records if r.name.startswith(("chat", "execute_tool")))


def test_pydantic_ai_s_reported_cost_is_used_when_it_is_the_only_report():
    capture = Capture({"service.name": "billing-svc"})
    _run_agent(capture)
    sdk_scope_dropped = [r for r in capture.normalized() if r.name != "anthropic.messages.create"]
    records = TraceStage().process(sdk_scope_dropped, now=0.0)
    chats = [r for r in records if r.name.startswith("chat ")]
    assert [r.cost_source for r in chats] == ["reported", "reported"]  # operation.cost, plausible
    assert sum(r.cost_usd for r in chats) == pytest.approx(2 * ONE_CALL, abs=1e-9)


MULTI = {"service.name": "support", "spanwarden.multi_agent": True}


def test_in_process_stamping_names_the_agent_of_every_span_under_it():
    capture = Capture(MULTI, stamp=True)
    _run_agent(capture)
    without_agent_span = [r for r in capture.normalized() if r.operation != "invoke_agent"]
    records = TraceStage().process(without_agent_span, now=0.0)  # the agent span never even arrives
    assert {r.agent_id for r in records} == {"support/billing"}
    assert {r.agent_source for r in records} == {"agent_span"}


def test_a_multi_agent_service_names_the_agent_from_pydantic_ai_s_spans_without_waiting():
    capture = Capture(MULTI)
    _run_agent(capture)
    normalized = capture.normalized()
    children = [r for r in normalized if r.operation != "invoke_agent"]
    stage = TraceStage(wait_s=5.0)
    released = stage.process(children, now=100.0)  # Pydantic AI names its agent on every span it makes
    assert stage.held == 0 and len(released) == len(children)
    assert {r.agent_id for r in released} == {"support/billing"}
    sdk = [r for r in released if r.name == "anthropic.messages.create"]
    assert {r.agent_source for r in sdk} == {"inherited"}  # the SDK's spans, from their parent chat span
