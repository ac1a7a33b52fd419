"""The embedded service over real HTTP on loopback, fed by the real OTLP/HTTP exporter."""

from __future__ import annotations

import gzip
import json
import threading
import time

import pytest
import requests
import yaml
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import verify
from spanwarden.enforcers.policy import Policy
from spanwarden.settings import Settings


def start(tmp_path, **overrides):
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", **overrides))
    port = service.start_in_thread()
    return service, f"http://127.0.0.1:{port}"


@pytest.fixture
def running(tmp_path):
    service, url = start(tmp_path, admin_token="test-token", max_body_bytes=200_000)
    yield service, url
    service.stop()


def export_spans(url: str, agent: str, count: int, compression=None, **attributes) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": agent,
                                                        "deployment.environment.name": "prod"}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for _ in range(count):
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 100, **attributes}):
            pass
    provider.shutdown()


def command(url, body, token="test-token"):  # the fixture's admin token unless told otherwise
    return requests.post(f"{url}/v1/commands", json=body, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)


def test_real_exporter_spans_reach_the_pipeline(running):
    service, url = running
    export_spans(url, "agent-1", 5)
    assert requests.get(f"{url}/healthz", timeout=5).json()["records"] == 5
    status = requests.get(f"{url}/v1/status", headers={"Authorization": "Bearer test-token"}, timeout=5)
    assert [a["agent"] for a in status.json()["agents"]] == ["agent-1"]


def test_gzip_compressed_export_is_accepted(running):
    from opentelemetry.exporter.otlp.proto.http import Compression

    service, url = running
    export_spans(url, "agent-z", 4, compression=Compression.Gzip)
    assert requests.get(f"{url}/healthz", timeout=5).json()["records"] == 4


@pytest.mark.parametrize("body, headers, status, words", [
    (b"\x0a\xff\xff", {"Content-Type": "application/x-protobuf"}, 400, "not a valid OTLP"),
    (b"{oops", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported Content-Type"),
    (b"x" * 300_000, {"Content-Type": "application/x-protobuf"}, 413, "exceeds the limit"),
    (gzip.compress(b"\0" * 1_000_000), {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
     413, "after decompression"),
])
def test_bad_requests_get_clear_errors_and_nothing_else_is_lost(running, body, headers, status, words):
    service, url = running
    export_spans(url, "agent-1", 2)
    response = requests.post(f"{url}/v1/traces", data=body, headers=headers, timeout=10)
    assert response.status_code == status and words in response.json()["message"]
    export_spans(url, "agent-1", 2)
    assert requests.get(f"{url}/healthz", timeout=5).json()["records"] == 4


def test_commands_need_the_token(running):
    service, url = running
    assert command(url, {"command": "kill", "agent": "a", "actor": "x", "reason": "r"}, "wrong").status_code == 401
    assert requests.post(f"{url}/v1/commands", json={"command": "kill", "agent": "a"},
                         timeout=5).status_code == 401
    assert command(url, {"command": "kill", "agent": "a", "actor": "x"}).status_code == 400  # no reason
    assert command(url, {"command": "explode", "agent": "a", "actor": "x"}).status_code == 400
    for rate in ("fast", 0, -1):
        body = {"command": "throttle", "agent": "a", "actor": "x", "rate_per_s": rate}
        assert command(url, body).status_code == 400
    throttled = command(url, {"command": "throttle", "agent": "a", "actor": "x"})
    assert throttled.json()["action"] == "throttle" and throttled.json()["throttle_per_s"] == 0.5


def test_long_poll_answers_as_soon_as_the_decision_changes(running):
    service, url = running
    answer = {}

    def poll():
        started = time.monotonic()
        answer["decision"] = requests.get(f"{url}/v1/decisions/agent-9", params={"after": 0, "wait": 20},
                                          timeout=30).json()
        answer["waited"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    assert command(url, {"command": "kill", "agent": "agent-9", "actor": "alice",
                         "reason": "runaway"}).status_code == 200
    poller.join(10)
    assert answer["decision"]["action"] == "halt" and answer["decision"]["decided_by"] == "human:admin for alice"
    assert answer["waited"] < 10  # woken by the change, not by the 20 s timeout


def test_restart_keeps_baselines_decisions_and_the_audit_chain(tmp_path):
    service, url = start(tmp_path, admin_token="t")
    export_spans(url, "agent-1", 30)
    assert command(url, {"command": "kill", "agent": "agent-1", "actor": "alice", "reason": "test"},
                   "t").status_code == 200
    before = service.call(lambda: service.pipeline.to_state())
    service.stop()

    again, url2 = start(tmp_path, admin_token="t")
    try:
        decision = requests.get(f"{url2}/v1/decisions/agent-1", timeout=5).json()
        assert decision["action"] == "halt" and decision["version"] == 1
        # Baselines are paged in lazily: on disk at the start, then back exactly when the agent is needed.
        assert again.call(lambda: (set(again.pipeline.detectors), set(again.pipeline.paged_out))) == (
            set(), {"agent-1"})
        assert again.call(lambda: again.pipeline.bank("agent-1")) is not None
        assert again.call(lambda: again.pipeline.to_state()) == before
    finally:
        again.stop()
    result = verify(tmp_path / "audit.jsonl")
    assert result.ok and result.by_kind["command"] == 1 and result.by_kind["service"] == 4


def test_decisions_after_the_last_snapshot_come_back_from_the_audit_log(tmp_path):
    service, url = start(tmp_path, admin_token="t", snapshot_interval_s=3600)
    export_spans(url, "agent-2", 3)
    service.call(service.snapshot)
    command(url, {"command": "kill", "agent": "agent-2", "actor": "bob", "reason": "x"}, "t")
    # Simulate a crash: the snapshot on disk predates the kill; only the audit log has it.
    snapshot = (tmp_path / "state.db").read_bytes()
    service.stop()
    (tmp_path / "state.db").write_bytes(snapshot)
    again, url2 = start(tmp_path, admin_token="t")
    try:
        assert requests.get(f"{url2}/v1/decisions/agent-2", timeout=5).json()["action"] == "halt"
    finally:
        again.stop()


def test_a_tampered_audit_log_blocks_intake_until_an_admin_acknowledges(tmp_path):
    from spanwarden.enforcers.roles import Role, add_token

    service, url = start(tmp_path, admin_token="adm")
    command(url, {"command": "kill", "agent": "agent-1", "reason": "x"}, "adm")
    service.stop()
    path = tmp_path / "audit.jsonl"
    path.write_text(path.read_text().replace("service started", "service STARTED"))
    viewer = add_token(tmp_path / "tokens.yaml", "vera", Role.VIEWER)

    service, url = start(tmp_path, admin_token="adm")
    try:
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 503
        assert requests.get(f"{url}/v1/decisions/agent-1", timeout=5).json()["action"] == "halt"  # still halted
        refused = requests.post(f"{url}/v1/traces", data=b"", timeout=5,
                                headers={"Content-Type": "application/x-protobuf"})
        assert refused.status_code == 503 and "acknowledge" in refused.json()["message"]  # exporters retry 503
        assert command(url, {"command": "resume", "agent": "agent-1"}, "adm").status_code == 503
        ack = lambda token, reason="restored from backup": requests.post(  # noqa: E731
            f"{url}/v1/audit/acknowledge", json={"reason": reason}, timeout=5,
            headers={"Authorization": f"Bearer {token}"})
        assert ack(viewer).status_code == 403 and ack("adm", "").status_code == 400
        moved = ack("adm").json()["moved_to"]
        assert (tmp_path / moved).exists() and not verify(tmp_path / moved).ok
        export_spans(url, "agent-1", 2)
        assert requests.get(f"{url}/healthz", timeout=5).json()["records"] == 2
    finally:
        service.stop()
    first = json.loads(path.read_text().splitlines()[0])
    assert first["actor"] == "human:admin" and first["data"]["command"] == "audit_acknowledge"
    assert "altered" in first["data"]["break"] and verify(path).ok


def test_bad_redaction_pattern_is_refused_at_start():
    with pytest.raises(ValueError, match="redact_patterns"):
        Settings(redact_patterns=["(unclosed"])


def test_roles_decide_who_may_command_and_refusals_are_audited(tmp_path):
    """Also: a refusal repeated is audited once, and unauthenticated ones not at all."""
    from spanwarden.enforcers.roles import Role, add_token

    tokens = tmp_path / "tokens.yaml"
    viewer = add_token(tokens, "vera", Role.VIEWER)
    oncall = add_token(tokens, "omar", Role.ONCALL)
    agent = add_token(tokens, "billing-bot", Role.AGENT, ("billing-bot",))
    service, url = start(tmp_path)
    try:
        kill = {"command": "kill", "agent": "billing-bot", "reason": "runaway"}
        assert command(url, kill, viewer).status_code == 403
        assert command(url, {**kill, "command": "resume"}, agent).status_code == 403  # never itself
        assert command(url, kill, "forged").status_code == 401
        for _ in range(20):  # an attacker's loop grows neither the audit log nor its fsyncs
            assert command(url, kill, "forged").status_code == 401
            assert command(url, kill, viewer).status_code == 403
        done = command(url, kill, oncall)
        assert done.status_code == 200 and done.json()["decided_by"] == "human:omar"
        status = requests.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {viewer}"}, timeout=5)
        assert status.status_code == 200
        assert requests.get(f"{url}/v1/status", timeout=5).status_code == 401
        assert requests.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {agent}"},
                            timeout=5).status_code == 403
    finally:
        service.stop()
    refused = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    refused = [e for e in refused if e["kind"] == "command" and e["data"].get("outcome") == "refused"]
    # 403s (a known principal past its role) are audited; 401s (anyone who can reach the port) only counted.
    assert [(e["actor"], e["data"]["status"]) for e in refused] == [
        ("human:vera", 403), ("agent:billing-bot", 403), ("agent:billing-bot", 403)]


def test_policy_reload_applies_audits_and_refuses_invalid_files(tmp_path):
    from spanwarden.enforcers.roles import Role, add_token

    policy_file = tmp_path / "policy.yaml"
    shipped = Policy.load().model_dump(mode="json")
    policy_file.write_text(yaml.safe_dump({**shipped, "version": "v1"}))
    oncall = add_token(tmp_path / "tokens.yaml", "omar", Role.ONCALL)
    service, url = start(tmp_path, admin_token="adm", policy_file=policy_file)
    try:
        export_spans(url, "agent-1", 3)
        reload = lambda token: requests.post(f"{url}/v1/policy/reload",  # noqa: E731
                                             headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert reload(oncall).status_code == 403
        policy_file.write_text(yaml.safe_dump({**shipped, "version": "v2", "budgets": {"agent_usd_per_hour": 5}}))
        assert reload("adm").json() == {"policy_version": "v2"}
        budget = service.call(lambda: service.pipeline.detectors["agent-1"].cost.config.hourly_budget_usd)
        assert budget == 5  # existing agents take the new budget, keeping what they learned
        policy_file.write_text("version: v3\nrules: [{id: x, action: explode}]\n")
        refused = reload("adm")
        assert refused.status_code == 400 and "line 2" in refused.json()["message"]
        assert service.call(lambda: service.pipeline.policy.version) == "v2"
    finally:
        service.stop()
    changes = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    changes = [(e["actor"], e["data"].get("outcome")) for e in changes if e["kind"] == "config_change"]
    assert changes == [("human:admin", "applied"), ("human:admin", "refused")]


def test_team_scoped_kill_and_resume_name_exactly_the_team(running):
    service, url = running
    for agent, team in (("a1", "finance"), ("a2", "finance"), ("b1", "growth")):
        provider = TracerProvider(resource=Resource.create({"service.name": agent, "spanwarden.team": team}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
        with provider.get_tracer("t").start_as_current_span("chat"):
            pass
        provider.shutdown()
    killed = command(url, {"command": "kill", "team": "finance", "reason": "budget incident"})
    assert [d["agent_id"] for d in killed.json()["decisions"]] == ["a1", "a2"]
    def actions(*agents):
        return {a: requests.get(f"{url}/v1/decisions/{a}", timeout=5).json()["action"] for a in agents}

    assert actions("a1", "a2", "b1") == {"a1": "halt", "a2": "halt", "b1": "allow"}
    command(url, {"command": "resume", "agent": "a2"})
    assert actions("a1", "a2") == {"a1": "halt", "a2": "allow"}  # a resume undoes exactly what it names
    assert command(url, {"command": "kill", "team": "nobody", "reason": "x"}).status_code == 404
