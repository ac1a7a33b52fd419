"""Pinning a reviewed profile on the Kafka runtime, on the real broker: the gateway sends the pin to the
agent's worker, which puts it in force (drift from it is a `pinned_profile` finding), audits it through the
audit topic into the gateway's chain, and keeps it with the agent's state through a `kill -9`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from aiokafka.structs import ConsumerRecord

from spanwarden.collector.otlp_encode import to_request
from spanwarden.enforcers.audit_log import AuditEntry, read_entries
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.topics import FINDINGS
from tests.detectors.traffic import T0, make_record, normal
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import produce_spans, read_topic
from tests.streaming.test_gateway_end_to_end import TOKEN, _until, running_gateway

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _profile(url: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/v1/profile/agent-a", headers=ADMIN, timeout=30)
    return dict(answer.json()) if answer.status_code == 200 else {}


def _drift(messages: list[ConsumerRecord]) -> list[tuple[str, str]]:
    docs = [orjson.loads(m.value) for m in messages if m.value]
    return [(str(d["kind"]), str(d.get("subject", ""))) for d in docs if d.get("detector") == "pinned_profile"]


def test_a_pinned_profile_is_kept_and_enforced_by_the_agents_worker(broker: LocalBroker, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANWARDEN_TRUST_SPAN_TIME", "1")  # the traffic carries simulated times
    gateway = running_gateway(broker, tmp_path)
    url, _ = next(gateway)
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
    try:
        history = normal(2, 1)
        produce_spans(broker.bootstrap, [("agent-a", to_request(history).SerializeToString())])
        learned = _until(lambda: (p := _profile(url)).get("tools", {}).keys() >= {"http_get", "search"} and p, 60)
        assert learned and learned["pinned"] is None, learned
        unknown = requests.post(f"{url}/v1/profile/nobody/pin", headers=ADMIN, timeout=30, json={"reason": "r"})
        assert unknown.status_code == 400 and "no learned profile" in unknown.json()["message"]

        reviewed = {**learned, "tools": ["search", "sql_query"]}  # the reviewer drops http_get
        pinned = requests.post(f"{url}/v1/profile/agent-a/pin", headers=ADMIN, timeout=30,
                               json={"reason": "Q4 review", "profile": reviewed})
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["tools"] == ["search", "sql_query"]
        assert set(pinned.json()["resources"]) == set(learned["resources"])

        late = T0 + 3600
        drifting = [make_record(agent_id="agent-a", tool_name="http_get", span_id=f"c{i:015x}",
                                end_ns=int((late + i) * 1e9)) for i in range(3)]
        drifting.append(make_record(agent_id="agent-a", tool_name="sql_query", resource="db:pg:hr.payroll",
                                    span_id="c" * 16, end_ns=int((late + 5) * 1e9)))
        produce_spans(broker.bootstrap, [("agent-a", to_request(drifting).SerializeToString())])
        found = _drift(read_topic(broker.bootstrap, FINDINGS, lambda m: len(_drift(m)) >= 2, 60))
        assert found == [("drift_tool", "http_get"), ("drift_resource", "db:pg:hr.payroll")]  # each once

        worker.kill()  # SIGKILL: the pin is in the agent's saved state
        worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS).start()
        again = _until(lambda: (p := _profile(url)).get("pinned") and p, 60)
        assert again and again["pinned"]["tools"] == ["search", "sql_query"], again
        assert again["drift_from_pinned"]["tools"] == ["http_get"]
        audit = tmp_path / "gw" / "audit.jsonl"
        changes = _until(lambda: [e for _, e in read_entries(audit) if isinstance(e, AuditEntry)
                                  and e.kind == "config_change" and e.reason == "pinned profile: Q4 review"], 30)
        assert len(changes) == 1 and changes[0].agent.id == "agent-a" and changes[0].actor.startswith("human:")
    finally:
        worker.stop()
        next(gateway, None)
