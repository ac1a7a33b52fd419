"""`instrument()` turns on the installed LLM instrumentations, one per library, and the real openai client
then makes the spans the guard stands in front of (against the loopback fake LLM and a real service)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from importlib.metadata import entry_points, version

import pytest
import requests

from spanwarden.collector import instrumentations
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.collector.fake_llm import FakeLLM, fake_llm

pytest.importorskip("openai")
pytest.importorskip("opentelemetry.instrumentation.openai_v2")


def openai_points():
    return [p for p in entry_points(group=instrumentations.GROUP) if p.name == "openai"]


def test_one_instrumentation_per_library_the_projects_own_first():
    from opentelemetry.sdk.trace import TracerProvider

    activated = instrumentations.activate(TracerProvider(), "auto", openai_points())
    try:
        assert [(a.library, a.distribution) for a in activated] == [
            ("openai", "opentelemetry-instrumentation-openai-v2")]
        assert activated[0].instrumentor.is_instrumented_by_opentelemetry
        # Already instrumented (by the agent, or by an earlier call): nothing is turned on a second time.
        assert instrumentations.activate(TracerProvider(), "auto", openai_points()) == []
    finally:
        instrumentations.deactivate(activated)
    assert not activated[0].instrumentor.is_instrumented_by_opentelemetry


def test_a_named_distribution_or_none():
    from opentelemetry.sdk.trace import TracerProvider

    points = openai_points()
    others = [p.dist.name for p in points if p.dist and p.dist.name != "opentelemetry-instrumentation-openai-v2"]
    assert instrumentations.activate(TracerProvider(), "none", points) == []
    if not others:
        pytest.skip("only one openai instrumentation is installed")
    activated = instrumentations.activate(TracerProvider(), others[0], points)
    try:
        assert [a.distribution for a in activated] == [others[0]]
    finally:
        instrumentations.deactivate(activated)


def test_non_genai_instrumentations_are_left_alone():
    found = instrumentations._candidates(entry_points(group=instrumentations.GROUP), None)
    assert found and set(found) <= instrumentations.GENAI_LIBRARIES | {
        p.name for p in entry_points(group=instrumentations.GROUP)
        if p.dist and p.dist.name.lower().startswith("openinference-")}


def test_warns_once_when_no_llm_instrumentation_is_installed(caplog, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setattr(instrumentations, "_once", set())
    with caplog.at_level(logging.WARNING, logger="spanwarden"):
        assert instrumentations.activate(TracerProvider(), "auto", []) == []
        assert instrumentations.activate(TracerProvider(), "auto", []) == []
    warnings = [r.getMessage() for r in caplog.records if "no LLM instrumentation" in r.getMessage()]
    assert len(warnings) == 1 and "spanwarden[openai]" in warnings[0]


AGENT = textwrap.dedent("""
    import json, sys
    import openai
    import spanwarden
    handle = spanwarden.instrument(agent_id="oai-agent", owner="alice@example.com", environment="prod",
                                   endpoint=sys.argv[1])
    client = openai.OpenAI(base_url=sys.argv[2] + "/v1", api_key="sk-test", max_retries=0)
    outcome = "called"
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except spanwarden.AgentHalted as exc:
        outcome = "halted by " + exc.decided_by
    handle.shutdown()
    print(json.dumps({"outcome": outcome, "activated": [str(a) for a in handle.instrumentations]}))
""")


def spend(url: str, agent: str, wait_s: float = 30.0) -> float:
    """The agent's spend in the last hour, once the service has judged its spans (they may be held for the
    lateness bound first)."""
    deadline = time.monotonic() + wait_s
    while True:
        status = requests.get(f"{url}/v1/status", headers={"Authorization": "Bearer t"}, timeout=5).json()
        found = [a["spend_usd_last_hour"] for a in status["agents"] if a["agent"] == agent]
        if (found and found[0] > 0) or time.monotonic() > deadline:
            return found[0] if found else 0.0
        time.sleep(0.2)


@pytest.mark.slow
def test_the_one_liner_with_the_real_openai_client(tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path / "state", admin_token="t",
                                       audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        with fake_llm() as llm:
            def run() -> dict:
                done = subprocess.run([sys.executable, str(script), url, llm], env=env, capture_output=True,
                                      text=True, timeout=60)
                assert done.returncode == 0, done.stderr[-2000:]
                return json.loads(done.stdout.strip().splitlines()[-1])

            first = run()
            assert first["outcome"] == "called"
            dist = "opentelemetry-instrumentation-openai-v2"
            openai_ones = [a for a in first["activated"] if a.startswith("openai ")]
            assert openai_ones == [f"openai ({dist} {version(dist)})"]
            assert spend(url, "oai-agent") > 0  # the chat span, with its usage, priced
            requests.post(f"{url}/v1/commands", headers={"Authorization": "Bearer t"}, timeout=5,
                          json={"command": "kill", "agent": "oai-agent", "reason": "test"}).raise_for_status()
            calls = len(FakeLLM.received)
            assert run()["outcome"] == "halted by human:admin"
            assert len(FakeLLM.received) == calls  # refused before the request went out
    finally:
        service.stop()


def test_a_library_that_traces_itself_gets_no_instrumentation(tmp_path, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider

    if not instrumentations.traces_itself("anthropic"):
        pytest.skip("the installed anthropic SDK does not make its own spans")
    points = [p for p in entry_points(group=instrumentations.GROUP) if p.name == "anthropic"]
    assert instrumentations.activate(TracerProvider(), "auto", points) == []
    named = instrumentations.activate(TracerProvider(), "anthropic", points)  # asked for by name: turned on
    try:
        assert [a.library for a in named] == ["anthropic"] if points else named == []
    finally:
        instrumentations.deactivate(named)
    assert not instrumentations.traces_itself("openai")
