"""The Kafka runtime end to end: agents' real OTel SDK exporters → `serve --kafka` → broker → a real worker
process → decisions topic → the gateway's control channel → the agent's guard halts; on-call commands go
through the worker and come back as decisions; the gateway's audit log holds both, chained."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml
from aiokafka import AIOKafkaProducer
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from spanwarden import AccessPending, AgentHalted
from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import Guard
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import SpanRecord
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry, AuditLog, AuditUnwritable, read_entries, verify
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.settings import Settings
from spanwarden.streaming import policy_topic
from spanwarden.streaming.gateway import KafkaGateway
from spanwarden.streaming.keyed_audit import KEY_FIELD, encode_entry
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.topics import AUDIT, DECISIONS
from tests.detectors.traffic import T0, merged, normal, runaway
from tests.streaming.conftest import PARTITIONS

pytestmark = pytest.mark.slow
TOKEN = "gateway-admin-token"


@pytest.fixture(autouse=True)
def _replayed_span_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANWARDEN_TRUST_SPAN_TIME", "1")  # these spans carry simulated times: workers replay them


@pytest.fixture
def gateway(broker: LocalBroker, tmp_path: Path) -> Iterator[tuple[str, KafkaGateway]]:
    yield from running_gateway(broker, tmp_path)


def running_gateway(broker: LocalBroker, tmp_path: Path, **overrides: Any) -> Iterator[tuple[str, KafkaGateway]]:
    settings = Settings(port=0, state_dir=tmp_path / "gw", kafka_bootstrap=broker.bootstrap,
                        kafka_partitions=PARTITIONS, admin_token=TOKEN, audit_fsync="never", long_poll_s=2,
                        **overrides)
    service = KafkaGateway(settings)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(service.serve(lambda port: ready.set())),
                              daemon=True)
    thread.start()
    assert ready.wait(30), "the gateway did not start"
    yield f"http://127.0.0.1:{service.port}", service
    loop.call_soon_threadsafe(service.request_stop)
    thread.join(30)


def _export(url: str, agent: str, records: list[SpanRecord]) -> None:
    """Send the records as real SDK spans through the real OTLP/HTTP exporter."""
    provider = TracerProvider(resource=Resource.create({
        "service.name": agent, "deployment.environment.name": "prod", "spanwarden.owner": "ana@example.com",
        "spanwarden.team": "search"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("e2e")
    for r in records:
        attributes = {k: v for k, v in {
            "gen_ai.response.model": r.model, "spanwarden.cost_usd": r.cost_usd, "gen_ai.tool.name": r.tool_name,
            "spanwarden.resource": r.resource, "spanwarden.fingerprint": r.fingerprint}.items() if v}
        span = tracer.start_span(r.tool_name or "chat", start_time=r.start_ns, attributes=attributes)
        if r.is_error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=r.end_ns)
    assert provider.force_flush(30_000)
    provider.shutdown()


def _halted(guard: Guard, timeout_s: float) -> AgentHalted | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            guard.check()
        except AgentHalted as halted:
            return halted
        time.sleep(0.1)
    return None


def test_a_runaway_agent_is_halted_through_kafka_and_commands_round_trip(
        broker: LocalBroker, gateway: tuple[str, KafkaGateway], tmp_path: Path) -> None:
    url, service = gateway
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
    watcher = DecisionWatcher(url, "agent-a", wait_s=2).start()
    try:
        guard = Guard("agent-a", watcher)
        _export(url, "agent-a", merged(normal(3, 2), runaway(T0 + 2 * 3600, 60)))
        halted = _halted(guard, 30)
        assert halted is not None and halted.decided_by.startswith("policy:"), "the guard never saw a halt"

        auth = {"Authorization": f"Bearer {TOKEN}"}
        killed = requests.post(f"{url}/v1/commands", headers=auth, timeout=15, json={
            "command": "kill", "agent": "agent-b", "reason": "leaking tickets", "actor": "omar"})
        assert killed.status_code == 200, killed.text
        assert (killed.json()["action"], killed.json()["decided_by"]) == ("halt", "human:admin for omar")
        resumed = requests.post(f"{url}/v1/commands", headers=auth, timeout=15, json={
            "command": "resume", "agent": "agent-a", "reason": "fixed the loop", "actor": "omar"})
        assert resumed.json()["action"] == "allow"
        assert watcher.wait_for_version(resumed.json()["version"], 10)
        guard.check()  # allowed again

        team = requests.post(f"{url}/v1/commands", headers=auth, timeout=15,
                             json={"command": "throttle", "team": "search", "reason": "team review",
                                   "rate_per_s": 1})
        assert team.status_code == 200, team.text  # the workers' agents directory names the team's agents
        assert [(d["agent_id"], d["action"]) for d in team.json()["decisions"]] == [("agent-a", "throttle")]
        refused = requests.post(f"{url}/v1/commands", timeout=15, json={"command": "kill", "agent": "agent-a",
                                                                          "reason": "no token"})
        assert refused.status_code == 401
        lease = requests.post(f"{url}/v1/leases", json={"agent": "agent-a"}, timeout=15)  # from its worker
        assert lease.status_code == 200 and lease.json()["agent_id"] == "agent-a", lease.text
        opened = requests.post(f"{url}/v1/approvals", timeout=5, json={
            "agent": "agent-a", "tool": "delete_rows", "arguments_digest": "d1", "environment": "prod"}).json()
        assert opened["required"] and opened["status"] == "pending"
        answered = requests.post(f"{url}/v1/approvals/{opened['id']}/answer", headers=auth, timeout=5,
                                 json={"approve": True, "reason": "cleanup ticket 42"})
        assert answered.json()["status"] == "approved"
    finally:
        watcher.stop()
        worker.stop()

    audit_path = tmp_path / "gw" / "audit.jsonl"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and service.writer.appended < 1:
        time.sleep(0.1)
    time.sleep(1.0)  # the writer follows the topic: let it catch up with the last command
    entries = [e for _, e in read_entries(audit_path)]
    assert verify(audit_path).ok
    halts = [e for e in entries if e.kind == "decision" and e.data.get("action") == "halt"]
    assert {(e.agent.id, e.agent.owner) for e in halts} >= {("agent-a", "ana@example.com")}
    assert any(e.kind == "command" and e.actor == "human:admin for omar" and e.agent.id == "agent-b"
               for e in entries)
    # A refusal without a token (401) is counted and logged, never audited: noise must not grow the chain.
    assert not any(e.kind == "command" and e.actor == "unauthenticated" for e in entries)
    assert [(e.actor, e.data["status"]) for e in entries if e.kind == "approval"] == [
        ("agent:agent-a", "pending"), ("human:admin", "approved")]


def test_spans_get_503_while_the_broker_is_away_and_go_through_when_it_is_back(
        broker: LocalBroker, gateway: tuple[str, KafkaGateway]) -> None:
    url, service = gateway
    body = to_request(normal(7, 0.2)).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    assert requests.post(f"{url}/v1/traces", data=body, headers=headers, timeout=30).status_code == 200
    broker.stop()
    started = time.monotonic()
    away = requests.post(f"{url}/v1/traces", data=body, headers=headers, timeout=30)
    assert away.status_code == 503 and "broker" in away.json()["message"]
    assert time.monotonic() - started < 15  # failed within the publish timeout, not aiokafka's 40 s
    assert requests.get(f"{url}/v1/decisions/agent-a", timeout=5).status_code == 200  # still served
    back = LocalBroker(port=broker.port, log_dir=broker.log_path.parent).start()
    try:
        statuses = []
        for _ in range(10):  # an OTLP exporter retries 503s with backoff
            statuses.append(requests.post(f"{url}/v1/traces", data=body, headers=headers, timeout=30).status_code)
            if statuses[-1] == 200:
                break
            time.sleep(1)
        assert statuses[-1] == 200, statuses
        assert service.publisher is not None and service.publisher.published == 2
    finally:
        back.stop()


def test_access_requests_through_the_kafka_runtime(broker: LocalBroker, gateway: tuple[str, KafkaGateway],
                                                   tmp_path: Path) -> None:
    """The agent's worker opens the request; the gateway lists it from the audit trail and sends the answer to
    that worker, which lifts the hold (and the guard sees it)."""
    url, _ = gateway
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
    watcher = DecisionWatcher(url, "agent-a", wait_s=2).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pii = "db:pg:crm.customers_pii"
    try:
        history = [r._replace(environment="prod") for r in normal(9, 1.5)]
        touch = history[-1]._replace(span_id="f" * 16, tool_name="sql_query", resource=pii,
                                     end_ns=history[-1].end_ns + 10**9, start_ns=history[-1].end_ns)
        _export(url, "agent-a", [*history, touch])
        deadline = time.monotonic() + 30
        pending: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not pending:
            pending = requests.get(f"{url}/v1/access-requests", headers=auth, timeout=5).json()["pending"]
            time.sleep(0.2)
        assert [(r["agent_id"], r["resource"]) for r in pending] == [("agent-a", pii)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(d.covers("sql_query", "", pii) for d in watcher.scoped):
            time.sleep(0.1)
        guard = Guard("agent-a", watcher)
        watcher.access_hold = "fail_fast"  # refuse at once here rather than hold the test's thread
        with pytest.raises(AccessPending):
            guard.check("sql_query", "", pii)
        guard.check("sql_query", "", "db:pg:crm.tickets")  # other calls go on
        answered = requests.post(f"{url}/v1/access-requests/{pending[0]['id']}/answer", headers=auth, timeout=15,
                                 json={"approve": True, "always": True, "reason": "support case 7"})
        assert answered.status_code == 200, answered.text
        decision = answered.json()["decision"]
        assert (decision["action"], decision["scope"]) == ("allow", f"resource:{pii}")
        assert watcher.wait_for_version(decision["version"], 10)
        guard.check("sql_query", "", pii)
    finally:
        watcher.stop()
        worker.stop()


def _produce(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send_and_wait(topic, value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(run())


def _until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    return check()


class _FullDisk:
    def append(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditUnwritable("cannot write the audit log: No space left on device")


def test_on_a_broken_chain_decisions_are_served_and_a_dead_audit_writer_stops_intake(
        broker: LocalBroker, tmp_path: Path) -> None:
    """As `serve`: the gateway starts on a broken chain and serves the workers' decisions; the workers' audit
    entries wait on the topic until an admin acknowledges, then go to the new chain. Then the audit writer
    dies (disk full): /healthz 503 names it and spans and commands are refused — not audited, not taken."""
    state = tmp_path / "gw"
    state.mkdir()
    log = AuditLog(state / "audit.jsonl", fsync="never")
    for i in range(3):
        log.append("service", AgentRef(), "service", f"entry {i}", float(i))
    log.close()
    (state / "audit.jsonl").write_text((state / "audit.jsonl").read_text().replace("entry 1", "entry one"))
    halt = Decision("agent-k", Action.HALT, "runaway", "policy:loop@v1", T0, 3)
    decisions = orjson.dumps({"decision": halt.to_dict(), "current": halt.to_dict(), "scoped": []})
    waiting = AuditEntry(1, T0, "decision", AgentRef("agent-k"), "policy:loop@v1", "runaway", (), "v1",
                         {"action": "halt", KEY_FIELD: "k-1"}, "")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    spans = {"data": to_request(normal(1, 0.05)).SerializeToString(),
             "headers": {"Content-Type": "application/x-protobuf"}}
    gateway = running_gateway(broker, tmp_path)
    url, service = next(gateway)
    try:
        assert requests.get(f"{url}/healthz", timeout=5).json()["status"] == "audit_broken"
        _produce(broker.bootstrap, DECISIONS, [("agent-k", decisions)])
        _produce(broker.bootstrap, AUDIT, [("agent-k", encode_entry(waiting))])
        assert _until(lambda: requests.get(f"{url}/v1/decisions/agent-k", timeout=5).json()["action"] == "halt")
        refused = requests.post(f"{url}/v1/traces", timeout=10, **spans)
        assert refused.status_code == 503 and "acknowledge" in refused.json()["message"]
        time.sleep(1.0)
        assert service.writer.appended == 0  # the worker's entry waits on the topic
        moved = requests.post(f"{url}/v1/audit/acknowledge", headers=auth, timeout=5, json={"reason": "restored"})
        assert moved.status_code == 200, moved.text
        assert _until(lambda: service.writer.appended == 1)
        assert requests.get(f"{url}/healthz", timeout=5).json()["status"] == "ok"
        assert requests.post(f"{url}/v1/traces", timeout=10, **spans).status_code == 200

        service.writer.audit = _FullDisk()
        later = replace(waiting, data={**waiting.data, KEY_FIELD: "k-2"})
        _produce(broker.bootstrap, AUDIT, [("agent-k", encode_entry(later))])
        health = _until(lambda: (h := requests.get(f"{url}/healthz", timeout=5)).status_code == 503 and h)
        assert health.json()["status"] == "task_dead" and "audit_writer" in health.json()["message"]
        assert "AuditUnwritable" in health.json()["tasks"]["audit_writer"]
        assert requests.post(f"{url}/v1/traces", timeout=10, **spans).status_code == 503
        kill = requests.post(f"{url}/v1/commands", headers=auth, timeout=10,
                             json={"command": "kill", "agent": "agent-k", "reason": "x"})
        assert kill.status_code == 503 and "audit_writer" in kill.json()["message"]
        assert requests.get(f"{url}/v1/decisions/agent-k", timeout=5).json()["action"] == "halt"  # still served
    finally:
        next(gateway, None)
    entries = [e for _, e in read_entries(state / "audit.jsonl")]
    assert verify(state / "audit.jsonl").ok
    assert [e.data.get("command") for e in entries[:1]] == ["audit_acknowledge"]
    assert [e.data.get(KEY_FIELD) for e in entries if e.kind == "decision"] == ["k-1"]


def test_a_policy_reload_is_validated_by_the_gateway_and_published_for_the_workers(
        broker: LocalBroker, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    shipped = Policy.load().model_dump(mode="json")
    policy_file.write_text(yaml.safe_dump({**shipped, "version": "v1"}))
    gateway = running_gateway(broker, tmp_path, policy_file=policy_file)
    url, _ = next(gateway)
    reload = lambda: requests.post(f"{url}/v1/policy/reload", timeout=15,  # noqa: E731
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        assert policy_topic.decode(policy_topic.read_newest(broker.bootstrap) or b"")[0].version == "v1"
        policy_file.write_text("version: v3\nrules: [{id: x, action: explode}]\n")
        refused = reload()
        assert refused.status_code == 400 and "line 2" in refused.json()["message"]
        policy_file.write_text(yaml.safe_dump({**shipped, "version": "v2"}))
        assert reload().json() == {"policy_version": "v2"}
        newest, actor = policy_topic.decode(policy_topic.read_newest(broker.bootstrap) or b"")
        assert (newest.version, actor) == ("v2", "human:admin")
    finally:
        next(gateway, None)
    changes = [(e.actor, e.data.get("outcome")) for _, e in read_entries(tmp_path / "gw" / "audit.jsonl")
               if e.kind == "config_change"]
    assert changes == [("human:admin", "refused"), ("human:admin", "published")]
