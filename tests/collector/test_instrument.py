"""The one-line and the zero-code set-up, against the real service on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import requests

import spanwarden
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings


@pytest.fixture
def service(tmp_path):
    svc = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    url = f"http://127.0.0.1:{svc.start_in_thread()}"
    yield url
    svc.stop()


def kill(url, agent):
    requests.post(f"{url}/v1/commands", json={"command": "kill", "agent": agent, "reason": "test"},
                  headers={"Authorization": "Bearer t"}, timeout=5).raise_for_status()


def records(url):
    return requests.get(f"{url}/healthz", timeout=5).json()["records"]


def test_one_line_instrument(service):
    handle = spanwarden.instrument(agent_id="one-liner", owner="alice@example.com", team="t",
                                   environment="prod", endpoint=service, set_global=False)
    tracer = handle.provider.get_tracer("agent")
    try:
        with tracer.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}):
            pass
        handle.provider.force_flush()
        assert records(service) == 1
        kill(service, "one-liner")
        assert handle.guard.watcher.wait_for_version(1, 5)
        with pytest.raises(spanwarden.AgentHalted), tracer.start_as_current_span(
                "chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}):
            pytest.fail("a halted agent's call must not run")
    finally:
        handle.shutdown()


AGENT = textwrap.dedent("""
    import time
    from opentelemetry import trace
    import spanwarden
    tracer = trace.get_tracer("agent")
    time.sleep(1.0)  # let the guard's first poll answer
    try:
        with tracer.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}):
            print("CALLED")
    except spanwarden.AgentHalted as exc:
        print("HALTED", exc.decided_by)
""")


@pytest.mark.slow
def test_zero_code_with_opentelemetry_instrument(service, tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    env = {**os.environ, "OTEL_SERVICE_NAME": "zero-code", "OTEL_EXPORTER_OTLP_ENDPOINT": service,
           "OTEL_PYTHON_CONFIGURATOR": "spanwarden", "OTEL_PYTHON_DISTRO": "spanwarden",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    instrument = os.path.join(os.path.dirname(sys.executable), "opentelemetry-instrument")

    def run() -> str:
        done = subprocess.run([instrument, sys.executable, str(script)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "CALLED" in run()
    deadline = time.monotonic() + 10
    while records(service) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert records(service) == 1  # exported over OTLP/HTTP by the SDK the configurator set up
    kill(service, "zero-code")
    assert "HALTED human:admin" in run()
