"""The real `spanwarden worker` process on a real broker: spans in → decisions and audit out; killed
mid-stream and restarted → the same baselines and nothing twice; two workers → the partitions split and
the results are those of one. The expected results come from the same pure code run in-process."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.enforcers.audit_log import AuditLog, verify
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.audit_writer import AuditWriter
from spanwarden.streaming.keyed_audit import KEY_FIELD, decode_entry
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.span_splitter import SpansMessage, SpanSplitter
from spanwarden.streaming.topics import AUDIT, DECISIONS
from tests.detectors.traffic import T0, error_storm, merged, normal, runaway
from tests.streaming.conftest import PARTITIONS
from tests.streaming.kafka_io import assigned_records_partitions, produce_spans, read_topic
from tests.streaming.same_state import assert_same_state

pytestmark = pytest.mark.slow
AGENTS = [f"agent-{c}" for c in "abcdef"]
CHANGELOG = "spanwarden-agent-state-changelog"


@pytest.fixture(autouse=True)
def _replayed_span_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANWARDEN_TRUST_SPAN_TIME", "1")  # these spans carry simulated times: workers replay them


def _traffic() -> list[tuple[str, bytes]]:
    """Six agents' normal work, one running away and one failing, as per-agent OTLP requests of 40 spans."""
    streams = [normal(i, 2.5, agent=a) for i, a in enumerate(AGENTS)]
    streams += [runaway(T0 + 2.2 * 3600, 60, agent="agent-a"), error_storm(T0 + 2.3 * 3600, 120, agent="agent-d")]
    records = merged(*streams)
    out = []
    for agent in AGENTS:
        mine = [r for r in records if r.agent_id == agent]
        out += [(agent, to_request(mine[s:s + 40]).SerializeToString()) for s in range(0, len(mine), 40)]
    return _interleave(out)


def _interleave(messages: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Round-robin over agents so every partition is busy at once (each agent's order kept)."""
    queues = {a: [m for m in messages if m[0] == a] for a in AGENTS}
    out: list[tuple[str, bytes]] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                out.append(queue.pop(0))
    return out


class Expected:
    """What one uninterrupted in-process shard makes of the messages the broker stored."""

    def __init__(self, stored: list[SpansMessage]) -> None:
        by_agent = SpanSplitter(Normalizer(PriceTable.load())).split(sorted(stored))
        shard = AgentShard(Policy.load(None), {})
        outputs = [shard.process(agent, sources) for agent, sources in by_agent.items()]
        self.audit = {e.data[KEY_FIELD]: e for o in outputs for e in o.audit}
        self.decisions = [m for o in outputs for m in o.decisions]
        self.states = {o.agent_id: orjson.loads(o.state) for o in outputs}

    def audit_complete(self, messages: list[ConsumerRecord]) -> bool:
        return set(self.audit) <= {decode_entry(m.value)["data"][KEY_FIELD] for m in messages}

    def states_complete(self, messages: list[ConsumerRecord]) -> bool:
        latest = _latest(messages)
        return all(latest.get(a, {}).get("positions") == s["positions"] for a, s in self.states.items())


def _latest(messages: list[ConsumerRecord]) -> dict[str, Any]:
    return {m.key.decode(): orjson.loads(m.value) for m in messages if m.value}


def _check_results(broker: LocalBroker, expected: Expected, tmp_path: Path) -> None:
    audit = read_topic(broker.bootstrap, AUDIT, expected.audit_complete)
    assert expected.audit_complete(audit), "not every expected audit entry reached the audit topic"
    # The gateway's writer appends each key once: the log holds exactly the expected entries.
    log = AuditLog(tmp_path / "audit.jsonl")
    writer = AuditWriter(log)
    for message in audit:
        writer.write(message.value)
    log.close()
    assert writer.appended == len(expected.audit) and verify(tmp_path / "audit.jsonl").ok
    got = {decode_entry(m.value)["data"][KEY_FIELD]: decode_entry(m.value) for m in audit}
    for key, entry in expected.audit.items():
        assert (got[key]["kind"], got[key]["reason"], got[key]["actor"]) == (entry.kind, entry.reason, entry.actor)
        assert_same_state(got[key]["data"], entry.data, key)

    decisions = read_topic(broker.bootstrap, DECISIONS,
                           lambda ms: len({(m.key, orjson.loads(m.value)["decision"]["version"]) for m in ms})
                           >= len(expected.decisions))
    by_version = {(d["decision"]["agent_id"], d["decision"]["version"]): d["decision"]
                  for d in (orjson.loads(m.value) for m in decisions)}
    assert by_version == {(d["decision"]["agent_id"], d["decision"]["version"]): d["decision"]
                          for d in expected.decisions}
    assert any(d["action"] == "halt" and a == "agent-a" for (a, _), d in by_version.items())

    states = _latest(read_topic(broker.bootstrap, CHANGELOG, expected.states_complete))
    for agent, state in expected.states.items():
        assert_same_state(states[agent], state, agent)


def test_a_worker_killed_mid_stream_resumes_with_the_same_baselines_and_writes_nothing_twice(
        broker: LocalBroker, tmp_path: Path) -> None:
    traffic = _traffic()
    half = len(traffic) // 2
    log_path = tmp_path / "worker.log"
    first = WorkerProcess(broker.bootstrap, log_path, PARTITIONS).start()
    stored = produce_spans(broker.bootstrap, traffic[:half])
    assert Expected(stored).audit, "the first half alone should already produce findings"
    read_topic(broker.bootstrap, AUDIT, Expected(stored).audit_complete)

    rest: list[SpansMessage] = []
    producing = threading.Thread(target=lambda: rest.extend(produce_spans(broker.bootstrap, traffic[half:])))
    producing.start()
    time.sleep(0.5)
    first.kill()  # SIGKILL while the second half streams in
    producing.join(60)
    second = WorkerProcess(broker.bootstrap, log_path, PARTITIONS).start()
    try:
        _check_results(broker, Expected(stored + rest), tmp_path)
    finally:
        second.stop()


def test_two_workers_split_the_partitions_and_agree_with_one(broker: LocalBroker, tmp_path: Path) -> None:
    workers = [WorkerProcess(broker.bootstrap, tmp_path / f"worker{i}.log", PARTITIONS) for i in range(2)]
    threads = [threading.Thread(target=w.start) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    try:
        stored = produce_spans(broker.bootstrap, _traffic())
        _check_results(broker, Expected(stored), tmp_path)
        shares = [assigned_records_partitions(w.log_path) for w in workers]
        assert all(shares) and not shares[0] & shares[1] and shares[0] | shares[1] == set(range(PARTITIONS))
    finally:
        for worker in workers:
            worker.stop()
