"""Authenticated ingest: an agent token reports for its own agents only; without a token spans are refused,
or (if the operator allows) kept apart as untrusted and never enforced on. Real OTLP exporters, real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from spanwarden.collector.ingest_auth import IngestGate, IngestRefused
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, decode_request
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import make_record
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import read_entries
from spanwarden.enforcers.roles import Role, TokenBook, add_token
from spanwarden.settings import Settings
from tests.conftest import SpanFactory
from tests.detectors.traffic import T0, merged, normal, runaway


def _book(tmp_path: Path) -> tuple[TokenBook, str, str]:
    tokens = tmp_path / "tokens.yaml"
    billing = add_token(tokens, "billing-bot-token", Role.AGENT, ("billing-bot",))
    fleet = add_token(tokens, "search-fleet", Role.AGENT, ("search-*",))
    return TokenBook.load(tokens), billing, fleet


def test_the_gate_admits_own_agents_only(tmp_path: Path) -> None:
    book, billing, fleet = _book(tmp_path)
    gate = IngestGate(book, "required")
    mine, other = make_record(agent_id="billing-bot"), make_record(agent_id="search-7")
    assert gate.admit(f"Bearer {billing}", [mine]) == [mine]
    assert gate.admit(f"Bearer {fleet}", [other]) == [other]
    assert gate.admit(f"Bearer {billing}", [make_record()])[0].agent_id == "billing-bot"  # no identity: its own
    with pytest.raises(IngestRefused) as refused:
        gate.admit(f"Bearer {billing}", [mine, other])
    assert refused.value.status == 403 and "search-7" in str(refused.value)
    for header in ("", "Bearer nope"):
        with pytest.raises(IngestRefused) as missing:
            gate.admit(header, [mine])
        assert missing.value.status == 401
    kept = IngestGate(book, "untrusted").admit("", [mine])
    assert kept[0].agent_id == "untrusted:billing-bot" and "untrusted" in kept[0].flags


def _exporter(url: str, token: str | None) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{url}/v1/traces",
                            headers={"Authorization": f"Bearer {token}"} if token else None)


def test_forged_and_anonymous_spans_are_refused_over_http_and_the_forgery_audited(tmp_path: Path) -> None:
    book, billing, _ = _book(tmp_path)
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", ingest_auth="required",
                                       tokens_file=tmp_path / "tokens.yaml"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        own, forged = SpanFactory({"service.name": "billing-bot"}), SpanFactory({"service.name": "payments-bot"})
        own.span("chat", {"gen_ai.request.model": "gpt-4o"})
        forged.span("chat", {"gen_ai.request.model": "gpt-4o"})
        assert _exporter(url, billing).export(own.exporter.get_finished_spans()) is SpanExportResult.SUCCESS
        assert _exporter(url, billing).export(forged.exporter.get_finished_spans()) is SpanExportResult.FAILURE
        assert _exporter(url, None).export(own.exporter.get_finished_spans()) is SpanExportResult.FAILURE
        assert service.pipeline.records_seen == 1 and "payments-bot" not in service.pipeline.agents
    finally:
        service.stop()
    refusals = [e for _, e in read_entries(tmp_path / "audit.jsonl") if e.data.get("command") == "ingest"]
    assert [(e.actor, e.agent.id, e.data["status"]) for e in refusals] == [
        ("agent:billing-bot-token", "payments-bot", 403)]


def test_untrusted_spans_are_learned_apart_and_never_enforced_on(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, trust_span_time=True,
                                       state_dir=tmp_path, audit_fsync="never", ingest_auth="untrusted"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        body = to_request(merged(normal(1, 2), runaway(T0 + 2 * 3600, 60))).SerializeToString()
        response = requests.post(f"{url}/v1/traces", data=body, timeout=10,
                                  headers={"Content-Type": "application/x-protobuf"})
        assert response.status_code == 200
        deadline = time.monotonic() + 30  # spans are judged once the lateness bound has passed
        while "untrusted:agent-a" not in service.latest_findings and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(service.pipeline.agents) == {"untrusted:agent-a"}
        assert service.pipeline.decision("untrusted:agent-a").action.value == "allow"
        assert service.latest_findings["untrusted:agent-a"].severity.label in ("warning", "critical")  # judged
    finally:
        service.stop()
    records = Normalizer(PriceTable.load()).records(decode_request(body, PROTOBUF))
    assert {r.agent_id for r in records} == {"agent-a"}  # the claim was agent-a; it is kept under untrusted:


def _service(tmp_path: Path, mode: str) -> tuple[EmbeddedService, str]:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", ingest_auth=mode,
                                       tokens_file=tmp_path / "tokens.yaml"))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


def _lease(url: str, agent: str, token: str | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/leases", json={"agent": agent}, timeout=5,
                         headers={"Authorization": f"Bearer {token}"} if token else {})


def test_leases_and_approval_requests_are_bound_to_the_agents_token(tmp_path: Path) -> None:
    _, billing, fleet = _book(tmp_path)
    service, url = _service(tmp_path, "required")
    try:
        stolen = [_lease(url, "billing-bot") for _ in range(20)]  # the attack: drain a victim's budget
        assert {r.status_code for r in stolen} == {401}
        assert _lease(url, "billing-bot", fleet).status_code == 403  # another agent's token
        own = _lease(url, "billing-bot", billing)
        assert own.status_code == 200 and own.json()["usd"] == 5.0  # the victim's budget is untouched
        approval = {"agent": "billing-bot", "tool": "refund_payment", "environment": "prod"}
        assert requests.post(f"{url}/v1/approvals", json=approval, timeout=5).status_code == 401
        assert requests.post(f"{url}/v1/approvals", json=approval, timeout=5,
                             headers={"Authorization": f"Bearer {fleet}"}).status_code == 403
        opened = requests.post(f"{url}/v1/approvals", json=approval, timeout=5,
                               headers={"Authorization": f"Bearer {billing}"}).json()
        assert opened["required"] and opened["agent_id"] == "billing-bot"
        metrics = requests.get(f"{url}/metrics", timeout=5).text
    finally:
        service.stop()
    assert 'route="/v1/leases",status="401"} 20.0' in metrics  # refusals counted ...
    assert 'route="/v1/approvals",status="403"} 1.0' in metrics
    refused = [e for _, e in read_entries(tmp_path / "audit.jsonl") if "refused" in e.reason]
    assert refused == []  # ... not each written (and fsynced) to the audit log


def test_without_a_token_untrusted_mode_leases_only_for_the_untrusted_name(tmp_path: Path) -> None:
    _, billing, _ = _book(tmp_path)
    service, url = _service(tmp_path, "untrusted")
    try:
        anonymous = _lease(url, "billing-bot").json()
        assert anonymous["agent_id"] == "untrusted:billing-bot"
        assert _lease(url, "billing-bot", billing).json()["agent_id"] == "billing-bot"
    finally:
        service.stop()


def test_the_guard_sends_the_exporters_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spanwarden import AgentHalted
    from spanwarden.collector.instrument import guard_processor

    _, billing, _ = _book(tmp_path)
    service, url = _service(tmp_path, "required")
    call = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.request.max_tokens": 100}
    try:
        without = guard_processor("billing-bot", url=url, spend_lease=True)
        with pytest.raises(AgentHalted, match="401"):
            without.lease.reserve(without.lease.call(call))  # type: ignore[union-attr]
        without.shutdown()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{billing}")
        processor = guard_processor("billing-bot", url=url, spend_lease=True)
        assert processor.lease is not None and processor.lease.reserve(processor.lease.call(call)) is not None
        processor.shutdown()
    finally:
        service.stop()
