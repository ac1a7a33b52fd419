"""The one agent-identity rule, on real SDK spans: explicit identity first, placeholders and per-run ids
never an agent, and chat/tool spans under an `invoke_agent` span inheriting its agent — from the span they
start under (in-process) or within the service's bounded wait (spans that come through a Collector)."""

from __future__ import annotations

import uuid

import pytest

from spanwarden.collector import agent_identity
from spanwarden.collector.trace_stage import TraceStage
from tests.collector.fake_llm import fake_llm
from tests.collector.instrumented import Capture, unwrap_left_over

openai = pytest.importorskip("openai")
openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")


@pytest.mark.parametrize("value, stable", [
    ("billing-bot", True), ("Triage Agent", True), ("agent-7", True), ("planner", True),
    ("agent", False), ("OpenAI Agent", False), ("Assistant", False), ("", False),
    (str(uuid.uuid4()), False), ("run-" + uuid.uuid4().hex, False), ("01JD3V1W5Z9Q8ZK3M5X0A1B2C3", False),
    ("1733059200123", False),
])
def test_stable_names_against_placeholders_and_per_run_ids(value, stable):
    assert bool(agent_identity.stable(value)) is stable


def test_qualify():
    assert agent_identity.qualify("support", "triage") == "support/triage"
    assert agent_identity.qualify("unknown", "triage") == "triage"
    assert agent_identity.qualify("untrusted:unknown", "triage") == "untrusted:triage"
    assert agent_identity.qualify("triage", "triage") == "triage"


def _agent_run(capture: Capture, agent_attributes: dict, child_attributes: dict | None = None,
               span_name: str = "invoke_agent Triage") -> None:
    """An agent framework's span (as openai-agents or CrewAI make them) over real openai-v2 chat calls and
    a tool span."""
    unwrap_left_over("")  # a clean client: no wrappers another test left on
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=capture.provider)
    tracer = capture.provider.get_tracer("agent-framework")
    try:
        with fake_llm() as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
            with tracer.start_as_current_span(span_name, attributes={
                    "gen_ai.operation.name": "invoke_agent", **agent_attributes}):
                for _ in range(2):
                    client.chat.completions.create(model="gpt-4o-mini",
                                                   messages=[{"role": "user", "content": "hi"}])
                with tracer.start_as_current_span("execute_tool route", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "route",
                        **(child_attributes or {})}):
                    pass
    finally:
        instrumentor.uninstrument()


MULTI = {"service.name": "support", "spanwarden.multi_agent": True}
AGENT = {"gen_ai.agent.name": "Triage"}


def test_a_service_s_name_is_its_agent_whatever_the_spans_say():
    capture = Capture({"service.name": "support"})
    _agent_run(capture, {"gen_ai.agent.id": "agent", **AGENT}, {"gen_ai.agent.id": "agent"})
    records = capture.records()
    assert {r.agent_id for r in records} == {"support"}
    assert {r.agent_source for r in records} == {"service"}


def test_placeholders_and_per_run_ids_are_never_agents():
    run = str(uuid.uuid4())
    capture = Capture({"service.name": "unknown_service"})  # the SDK's placeholder: no identity
    _agent_run(capture, {"gen_ai.agent.id": run, "gen_ai.agent.name": "OpenAI Agent"},
               {"gen_ai.agent.id": "agent"}, span_name="invoke_agent OpenAI Agent")
    records = capture.records()
    assert {r.agent_id for r in records} == {"unknown"}
    assert all("no_agent_identity" in r.flags for r in records)
    agent_span = next(r for r in records if r.operation == "invoke_agent")
    assert agent_span.conversation_id == run  # the per-run id is kept as the run's id


def test_explicit_and_resource_identities_come_first():
    explicit = Capture({"service.name": "support", "spanwarden.agent": "triage-bot"})
    _agent_run(explicit, AGENT)
    assert {r.agent_id for r in explicit.records()} == {"triage-bot"}
    declared = Capture({"service.name": "support", "gen_ai.agent.id": "support-triage"})
    _agent_run(declared, AGENT, {"spanwarden.agent": "router"})
    by_name = {r.name: r.agent_id for r in declared.records()}
    assert by_name["execute_tool route"] == "router" and by_name["invoke_agent Triage"] == "support-triage"


def test_a_multi_agent_service_names_each_agent_and_its_spans_inherit_it():
    capture = Capture(MULTI)
    _agent_run(capture, AGENT)
    records = capture.records()  # one export: the agent span is in it
    assert {r.agent_id for r in records} == {"support/Triage"}
    assert sorted(r.agent_source for r in records) == ["agent_span", "inherited", "inherited", "inherited"]


def test_without_a_service_name_the_agent_span_s_name_is_the_agent():
    capture = Capture({})
    _agent_run(capture, AGENT)
    assert {r.agent_id for r in capture.records()} == {"Triage"}


def test_without_any_identity_or_hint_spans_do_not_wait_for_an_agent_span():
    capture = Capture({})
    _agent_run(capture, AGENT)
    normalized = capture.normalized()
    stage = TraceStage(wait_s=5.0)
    early = stage.process([r for r in normalized if r.operation != "invoke_agent"], now=0.0)
    assert stage.held == 0 and {r.agent_id for r in early} == {"unknown"}
    assert all("no_agent_identity" in r.flags for r in early)


def test_stamped_in_process_the_agent_is_known_without_the_agent_span():
    capture = Capture(MULTI, stamp=True)
    _agent_run(capture, AGENT)
    children = [r for r in capture.normalized() if r.operation != "invoke_agent"]
    stage = TraceStage(wait_s=5.0)
    released = stage.process(children, now=100.0)
    assert stage.held == 0 and {r.agent_id for r in released} == {"support/Triage"}


def test_children_wait_for_their_agent_span_within_the_bound():
    capture = Capture(MULTI)
    _agent_run(capture, AGENT)
    normalized = capture.normalized()
    children = [r for r in normalized if r.operation != "invoke_agent"]
    stage = TraceStage(wait_s=5.0)
    assert stage.process(children, now=100.0) == [] and stage.held == 3
    released = stage.process([r for r in normalized if r.operation == "invoke_agent"], now=103.0)
    assert stage.held == 0 and len(released) == 4
    assert {r.agent_id for r in released} == {"support/Triage"}
    assert sum(r.cost_usd > 0 for r in released) == 2


def test_when_the_agent_span_never_comes_the_service_identity_is_kept():
    capture = Capture(MULTI)
    _agent_run(capture, AGENT)
    children = [r for r in capture.normalized() if r.operation != "invoke_agent"]
    stage = TraceStage(wait_s=5.0)
    stage.process(children, now=100.0)
    assert stage.expire(104.999) == [] and stage.held == 3
    released = stage.expire(105.0)
    assert {r.agent_id for r in released} == {"support"} and stage.missing == 3
    assert all(r.agent_source == "ancestor_missing" and "agent_ancestor_missing" in r.flags for r in released)
    assert {r.agent_source for r in TraceStage().process(children)} == {"ancestor_missing"}  # no clock: no wait


def test_held_records_are_bounded():
    capture = Capture(MULTI)
    _agent_run(capture, AGENT)
    children = [r for r in capture.normalized() if r.operation != "invoke_agent"]
    stage = TraceStage(wait_s=60.0, max_held=2)
    released = stage.process(children, now=0.0)
    assert stage.held == 2 and len(released) == 1 and released[0].agent_source == "ancestor_missing"
    assert released[0].span_id == children[0].span_id  # the oldest goes first
