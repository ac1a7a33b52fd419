"""Held by effect, with the real DB-API instrumentation on a real sqlite database and the real service: a
`DELETE FROM` through a tool named `run_sql` (no destructive-looking name) waits for a human in prod —
approved, it runs and its span carries the request; denied, the statement never reaches the database — and
runs at once in dev. The request carries the statement's summary, never a literal."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.instrumentation import dbapi
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanwarden import AgentHalted
from spanwarden.collector.instrument import guard_processor
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import PriceTable
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

ADMIN = {"Authorization": "Bearer t"}


@pytest.fixture
def service(tmp_path: Path) -> Any:
    running = EmbeddedService(Settings(port=0, state_dir=tmp_path / "state", audit_fsync="never", admin_token="t"))
    url = f"http://127.0.0.1:{running.start_in_thread()}"
    yield url
    running.stop()


class Agent:
    """An agent with the guard, the DB-API instrumentation on its own sqlite file, and a `run_sql` tool."""

    def __init__(self, url: str, environment: str, db: Path) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": f"sql-{environment}"}))
        self.guard = guard_processor(f"sql-{environment}", url=url, environment=environment)
        assert self.guard.guard.watcher.wait_heard(30)  # its approval rules are in (a busy machine is slow)
        self.provider.add_span_processor(self.guard)
        self.spans = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = self.provider.get_tracer("agent")
        self.db = dbapi.instrument_connection("agent", sqlite3.connect(db, check_same_thread=False), "sqlite",
                                              tracer_provider=self.provider)
        self.db.cursor().executescript(
            "CREATE TABLE customers (id INTEGER, email TEXT);"
            "INSERT INTO customers VALUES (1, 'ana@example.com'), (2, 'bo@example.com'), (3, 'cy@example.com');")

    def run_sql(self, sql: str, *params: Any) -> int:
        with self.tracer.start_as_current_span("execute_tool run_sql", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "run_sql"}):
            cursor = self.db.cursor()
            cursor.execute(sql, params)
            self.db.commit()
            return int(cursor.rowcount)

    def rows(self) -> int:
        return int(self.db.cursor().execute("SELECT count(*) FROM customers").fetchone()[0])

    def db_span(self, operation: str) -> Any:
        return next(s for s in reversed(self.spans.get_finished_spans()) if s.name == operation)

    def close(self) -> None:
        self.guard.shutdown()


def answer_first_request(url: str, approve: bool, seen: list[dict[str, Any]]) -> threading.Thread:
    def run() -> None:
        for _ in range(1000):
            pending = requests.get(f"{url}/v1/approvals", headers=ADMIN, timeout=5).json()["pending"]
            if pending:
                seen.append(pending[0])
                requests.post(f"{url}/v1/approvals/{pending[0]['id']}/answer", headers=ADMIN, timeout=5,
                              json={"approve": approve, "reason": "checked"}).raise_for_status()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_delete_through_run_sql_waits_for_approval_in_prod_and_runs_once_approved(service, tmp_path):
    agent = Agent(service, "prod", tmp_path / "prod.db")
    assert ("destructive", ("*",)) in agent.guard.guard.watcher.approval_effects
    seen: list[dict[str, Any]] = []
    helper = answer_first_request(service, approve=True, seen=seen)
    deleted = agent.run_sql("DELETE FROM customers WHERE email = 'ana@example.com'")
    helper.join()
    assert deleted == 1 and agent.rows() == 2
    [request] = seen
    assert (request["effect"], request["summary"], request["resource"], request["tool"]) == (
        "destructive", "DELETE FROM customers", "db:sqlite:customers", "run_sql")
    assert "ana@example.com" not in str(request)  # the summary, never a literal
    assert agent.db_span("DELETE").attributes["spanwarden.approval"] == request["id"]
    # A read is never held; nor is the request asked again for what does not need it.
    assert agent.run_sql("SELECT * FROM customers WHERE id = ?", 2) == -1
    assert requests.get(f"{service}/v1/approvals", headers=ADMIN, timeout=5).json()["pending"] == []
    agent.close()


def test_a_denied_delete_never_reaches_the_database(service, tmp_path):
    agent = Agent(service, "prod", tmp_path / "prod.db")
    seen: list[dict[str, Any]] = []
    helper = answer_first_request(service, approve=False, seen=seen)
    with pytest.raises(AgentHalted, match="DELETE FROM customers without WHERE denied"):
        agent.run_sql("DELETE FROM customers")
    helper.join()
    assert agent.rows() == 3  # the statement was refused before it was sent
    span = agent.db_span("DELETE")
    assert span.attributes["spanwarden.approval"] == f"denied:{seen[0]['id']}"
    assert not span.status.is_ok
    # What the service reads of that span: a destructive statement that was refused (so it changed nothing).
    [record] = Normalizer(PriceTable.load()).records(to_request_from_spans([span]))
    assert (record.effect, record.effect_summary, record.approval) == (
        "destructive", "DELETE FROM customers without WHERE", f"denied:{seen[0]['id']}")
    assert not record.is_write
    agent.close()


def test_the_same_delete_runs_at_once_in_dev(service, tmp_path):
    agent = Agent(service, "dev", tmp_path / "dev.db")
    assert agent.guard.guard.watcher.approval_effects == ()
    assert agent.run_sql("DELETE FROM customers") == 3
    assert "spanwarden.approval" not in agent.db_span("DELETE").attributes
    agent.close()


def to_request_from_spans(spans: list[Any]) -> Any:
    """OTLP, as the SDK's exporter sends it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans)


def test_a_file_delete_through_a_tool_of_any_name_is_held_by_its_effect(service, tmp_path):
    agent = Agent(service, "prod", tmp_path / "prod.db")
    report = tmp_path / "q4.csv"
    report.write_text("rows")
    seen: list[dict[str, Any]] = []
    helper = answer_first_request(service, approve=False, seen=seen)
    with pytest.raises(AgentHalted, match="delete file"), agent.tracer.start_as_current_span(
            "execute_tool remove_report", attributes={"gen_ai.tool.name": "remove_report",
                                                      "file.path": str(report)}):
        report.unlink()
    helper.join()
    assert report.exists() and seen[0]["effect"] == "destructive" and seen[0]["resource"] == f"file:{report}"
    agent.close()
