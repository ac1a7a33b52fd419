"""The incident report's list of writes, from an injected incident through the real parts: the DB-API
instrumentation on a real sqlite database, the guard, the OTLP exporter and the embedded service. A process
without the guard deletes rows in prod (an `unheld_write`: the onset); after it the agent updates, deletes
with an approval, is refused a DROP and reads. `spanwarden incident AGENT --writes --json` lists exactly the
writes since the onset — resource, operation, summary, rows, trace and span ids, and who approved."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation import dbapi
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from spanwarden import AgentHalted
from spanwarden.cli import app
from spanwarden.collector.instrument import guard_processor
from spanwarden.embedded.incident_report import build
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.roles import Role, add_token
from spanwarden.settings import Settings

AGENT = "ledger"
RESOURCE = Resource.create({"service.name": AGENT, "deployment.environment.name": "prod"})


def process(url: str, db: Path, spans: InMemorySpanExporter, guarded: bool) -> tuple[Any, Any, Any]:
    """One process of the agent: its own SDK, exporting to the service, with or without the guard."""
    provider = TracerProvider(resource=RESOURCE)
    guard = guard_processor(AGENT, url=url, environment="prod") if guarded else None
    if guard is not None:
        provider.add_span_processor(guard)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    connection = dbapi.instrument_connection(AGENT, sqlite3.connect(db, check_same_thread=False), "sqlite",
                                             tracer_provider=provider)
    return provider.get_tracer("agent"), connection, guard


def run_sql(tracer: Any, connection: Any, sql: str) -> None:
    with tracer.start_as_current_span("execute_tool run_sql", attributes={"gen_ai.tool.name": "run_sql"}):
        connection.cursor().execute(sql)
        connection.commit()


def answer_next(url: str, token: str, approve: bool) -> threading.Thread:
    def run() -> None:
        for _ in range(1000):
            found = requests.get(f"{url}/v1/approvals", headers={"Authorization": f"Bearer {token}"},
                                 timeout=5).json()["pending"]
            if found:
                requests.post(f"{url}/v1/approvals/{found[0]['id']}/answer", timeout=5,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"approve": approve, "reason": "ticket OPS-7"}).raise_for_status()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp_path = tmp_path_factory.mktemp("incident")
    state = tmp_path / "state"
    state.mkdir()
    token = add_token(state / "tokens.yaml", "omar", Role.ONCALL)
    service = EmbeddedService(Settings(port=0, state_dir=state, audit_fsync="never", trust_span_time=True))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    db = tmp_path / "ledger.db"
    sqlite3.connect(db).executescript("CREATE TABLE orders (id INTEGER, total REAL);"
                                      "INSERT INTO orders VALUES (1, 9.5), (2, 20), (3, 7), (4, 1);")
    spans = InMemorySpanExporter()
    tracer, connection, guard = process(url, db, spans, guarded=True)
    other, other_connection, _ = process(url, db, spans, guarded=False)
    run_sql(tracer, connection, "INSERT INTO orders VALUES (5, 3.25)")  # before the onset: not listed
    _wait(lambda: _journal_lines(state) >= 2)
    time.sleep(0.05)
    run_sql(other, other_connection, "DELETE FROM orders WHERE id = 1")  # no guard: unheld, the onset
    run_sql(tracer, connection, "UPDATE orders SET total = 0 WHERE id = 2")
    helper = answer_next(url, token, approve=True)
    run_sql(tracer, connection, "DELETE FROM orders WHERE id = 3")
    helper.join()
    helper = answer_next(url, token, approve=False)
    with pytest.raises(AgentHalted):
        run_sql(tracer, connection, "DROP TABLE orders")  # refused: it never ran, so nothing to roll back
    helper.join()
    run_sql(tracer, connection, "SELECT * FROM orders")
    _wait(lambda: _writes(state) is not None and len(_writes(state) or []) >= 3)
    yield state, spans
    guard.shutdown()
    service.stop()


def _journal_lines(state: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (state / "activity").glob("*.jsonl"))


def _writes(state: Path) -> list[dict[str, Any]] | None:
    try:
        return list(build(state, AGENT)["writes"])
    except LookupError:
        return None  # no onset yet


def _wait(condition: Any, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the service did not take the spans in time"
        time.sleep(0.05)


def test_the_writes_since_the_onset_are_listed_exactly(incident):
    state, spans = incident
    by_statement = {s.attributes["db.statement"]: s for s in spans.get_finished_spans() if s.name != "run_sql"
                    and "db.statement" in s.attributes}
    approved = by_statement["DELETE FROM orders WHERE id = 3"].attributes["spanwarden.approval"]
    expected = [
        ("DELETE FROM orders WHERE id = 1", "destructive", "DELETE FROM orders", None, None),
        ("UPDATE orders SET total = 0 WHERE id = 2", "write", "UPDATE orders", None, None),
        ("DELETE FROM orders WHERE id = 3", "destructive", "DELETE FROM orders", approved, "human:omar"),
    ]
    result = CliRunner().invoke(app, ["incident", AGENT, "--writes", "--json", "--state-dir", str(state)])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed == [{
        "time_s": by_statement[sql].end_time / 1e9, "resource": "db:sqlite:orders", "operation": operation,
        "summary": summary, "rows": 0, "trace_id": f"{by_statement[sql].context.trace_id:032x}",
        "span_id": f"{by_statement[sql].context.span_id:016x}", "approval": approval, "approved_by": approver,
        "error": None} for sql, operation, summary, approval, approver in expected]
    assert approved.startswith("req-")


def test_the_markdown_report_has_the_writes_section(incident):
    state, _ = incident
    result = CliRunner().invoke(app, ["incident", AGENT, "--state-dir", str(state)])
    assert result.exit_code == 0, result.output
    section = result.output.split("## Writes and destructive operations", 1)[1].split("## Tool calls", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "db:sqlite" in line]
    assert len(rows) == 3 and "human:omar" in rows[2] and "UPDATE orders" in rows[1]
    assert "DROP" not in section and "INSERT" not in section
    report = json.loads(CliRunner().invoke(app, ["incident", AGENT, "--json", "--state-dir", str(state)]).output)
    assert report["writes"] == json.loads(CliRunner().invoke(
        app, ["incident", AGENT, "--writes", "--json", "--state-dir", str(state)]).output)


def test_the_console_agent_page_shows_the_same_writes(incident):
    from spanwarden.console.agent_page import _read
    from spanwarden.console.render import environment
    from spanwarden.enforcers.decision import allow

    state, _ = incident
    page = environment().get_template("agent.html").render(
        agent={"agent": AGENT, "decision": allow(AGENT).to_dict()}, profile=None, profile_error="", waiting=[],
        may_act=False, csrf="", **_read(state, AGENT))
    table = page.split('id="incident-writes"', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]
    listed = build(state, AGENT)["writes"]
    assert len(rows) == len(listed) == 3
    for row, write in zip(rows, listed, strict=True):
        assert write["summary"] in row and write["span_id"] in row and write["resource"] in row
    assert "human:omar" in rows[2]
