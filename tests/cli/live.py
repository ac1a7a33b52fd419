"""A real embedded service on loopback for the CLI's tests, agents that report to it through the OTel SDK and
the OTLP exporter, and the `spanwarden` command run in-process as a user runs it (its exit code, its output)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanwarden.cli import app
from spanwarden.cli.errors import run
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

TOKEN = "t"  # the service's admin token: recorded as human:admin


def serve(state_dir: Path) -> tuple[EmbeddedService, str]:
    service = EmbeddedService(Settings(port=0, state_dir=state_dir, admin_token=TOKEN, audit_fsync="never"))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


def report(url: str, agent: str, owner: str, team: str, environment: str, calls: int = 2) -> None:
    """`calls` LLM calls of `agent`, exported as an instrumented agent exports them."""
    provider = TracerProvider(resource=Resource.create({
        "service.name": agent, "spanwarden.owner": owner, "spanwarden.team": team,
        "deployment.environment.name": environment}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("agent")
    for _ in range(calls):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}):
            pass
    provider.shutdown()


def spanwarden(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `spanwarden ARGS` (SPANWARDEN_URL/SPANWARDEN_TOKEN/COLUMNS from the environment): exit code and
    everything it printed."""
    capsys.readouterr()
    code = run(app, list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def as_user(monkeypatch: pytest.MonkeyPatch, url: str, state_dir: Path, columns: int = 80) -> None:
    """The environment a user's shell gives the command: where the service is, a token, the terminal width."""
    monkeypatch.setenv("SPANWARDEN_URL", url)
    monkeypatch.setenv("SPANWARDEN_TOKEN", TOKEN)
    monkeypatch.setenv("SPANWARDEN_STATE_DIR", str(state_dir))
    monkeypatch.setenv("COLUMNS", str(columns))
