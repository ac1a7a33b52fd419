"""Access requests end to end: an agent in prod reaches for a new sensitive table → a request appears; its
guard holds calls to that table only (other calls go on); approve → the held call proceeds and the next
touch needs no approval; deny → refused until lifted. Real SDK spans, real guard, real HTTP, the CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from typer.testing import CliRunner

from spanwarden import AccessPending, AgentHalted
from spanwarden.cli import app
from spanwarden.collector.instrument import guard_processor
from spanwarden.collector.span_record import make_record
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import read_entries
from spanwarden.settings import Settings
from tests.detectors.traffic import T0, normal

PII = "db:pg:crm.customers_pii"
SALARIES = "db:pg:hr.salaries_pii"
NOW = T0 + 2 * 3600


def _touch(service: EmbeddedService, resource: str, at: float) -> None:
    """What the spans of a call to `resource` tell the service."""
    record = make_record(agent_id="billing-bot", owner="ana@example.com", environment="prod",
                         tool_name="sql_query", resource=resource, start_ns=int((at - 1) * 1e9),
                         end_ns=int(at * 1e9), trace_id="ab" * 16, span_id=f"{int(at):016x}")
    service.call(lambda: service.deliver([record]))


def _cli(url: str, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--url", url], env={"SPANWARDEN_TOKEN": "t"})
    assert result.exit_code == 0, result.output
    return result.output


def _only_request(url: str) -> str:
    [pending] = json.loads(_cli(url, "requests", "--json"))
    return str(pending["id"])


def _held_call(tracer: Any, resource: str, outcome: list[Any]) -> threading.Thread:
    def call() -> None:
        try:
            with tracer.start_as_current_span("execute_tool sql_query", attributes={
                    "gen_ai.tool.name": "sql_query", "spanwarden.resource": resource}):
                outcome.append("made")
        except AgentHalted as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread


@pytest.fixture
def running(tmp_path: Path) -> Any:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", admin_token="t"),
                              clock=lambda: NOW)
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    history = [r._replace(agent_id="billing-bot", owner="ana@example.com", environment="prod")
               for r in normal(4, 1.5)]
    service.call(lambda: service.deliver(history))
    provider = TracerProvider(resource=Resource.create({"service.name": "billing-bot"}))
    processor = guard_processor("billing-bot", url=url, environment="prod")
    provider.add_span_processor(processor)
    yield service, url, provider.get_tracer("t"), processor
    processor.shutdown()
    service.stop()


def test_approve_lets_the_held_call_go_and_the_next_touch_needs_nothing(running: Any, tmp_path: Path) -> None:
    service, url, tracer, processor = running
    _touch(service, PII, T0 + 1.6 * 3600)
    pending = json.loads(_cli(url, "requests", "--json"))
    assert [(r["agent_id"], r["resource"]) for r in pending] == [("billing-bot", PII)]
    request_id = pending[0]["id"]
    assert processor.guard.watcher.wait_for_version(service.pipeline.decision("billing-bot").version + 1, 10)

    outcome: list[Any] = []
    held = _held_call(tracer, PII, outcome)
    time.sleep(0.5)
    assert outcome == [] and held.is_alive()  # held, not refused
    with tracer.start_as_current_span("execute_tool sql_query", attributes={
            "gen_ai.tool.name": "sql_query", "spanwarden.resource": "db:pg:crm.tickets"}):
        pass  # another resource: goes on while the first call waits

    assert "approved for good" in _cli(url, "approve", request_id, "--always", "--reason", "support needs it")
    held.join(10)
    assert outcome == ["made"]
    with tracer.start_as_current_span("execute_tool sql_query", attributes={
            "gen_ai.tool.name": "sql_query", "spanwarden.resource": PII}):
        pass  # the next touch needs no approval
    _touch(service, PII, T0 + 1.7 * 3600)
    assert json.loads(_cli(url, "requests", "--json")) == []  # and opens no new request
    answers = [e for _, e in read_entries(tmp_path / "audit.jsonl") if e.kind == "approval"]
    assert [(e.actor, e.data["status"]) for e in answers] == [
        ("policy:access-requests@" + service.pipeline.policy.version, "pending"), ("human:admin", "approved")]
    assert answers[0].agent.owner == "ana@example.com"


def test_deny_refuses_until_lifted(running: Any) -> None:
    service, url, tracer, processor = running
    _touch(service, SALARIES, T0 + 1.6 * 3600)
    outcome: list[Any] = []
    version = service.pipeline.decision("billing-bot").version
    assert processor.guard.watcher.wait_for_version(version + 1, 10)
    held = _held_call(tracer, SALARIES, outcome)
    time.sleep(0.3)
    _cli(url, "deny", _only_request(url), "--reason", "billing has no business in salaries")
    held.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], AgentHalted) and "denied" in str(outcome[0])
    assert processor.guard.watcher.wait_for_version(version + 2, 10)
    with pytest.raises(AgentHalted):
        processor.guard.check("sql_query", "", SALARIES)  # refused at once now, no waiting
    processor.guard.check("sql_query", "", "db:pg:crm.tickets")  # the rest goes on
    lifted = _cli(url, "resume", "billing-bot", "--resource", SALARIES, "--reason", "reviewed")
    assert "allow" in lifted
    assert processor.guard.watcher.wait_for_version(version + 3, 10)
    processor.guard.check("sql_query", "", SALARIES)


def test_fail_fast_raises_access_pending_with_the_request_id(running: Any) -> None:
    service, url, tracer, processor = running
    # The policy says fail_fast (the guard reads the hold with the approval rules, on each new decision).
    policy = service.pipeline.policy
    service.call(lambda: setattr(service.pipeline, "policy", policy.model_copy(update={
        "access_requests": policy.access_requests.model_copy(update={"hold": "fail_fast"})})))
    _touch(service, PII, T0 + 1.6 * 3600)
    watcher = processor.guard.watcher
    assert watcher.wait_for_version(service.pipeline.decision("billing-bot").version + 1, 10)
    deadline = time.monotonic() + 10
    while watcher.access_hold != "fail_fast" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.access_hold == "fail_fast"
    with pytest.raises(AccessPending) as pending:
        processor.guard.check("sql_query", "", PII)
    assert (pending.value.request_id, pending.value.resource) == (_only_request(url), PII)
