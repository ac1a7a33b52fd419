"""Recovery benchmark: how long a restarted `spanwarden worker` takes before it decides again, with its state
table in memory (Faust reads the whole changelog) and in RocksDB (the local database holds the changelog
offset it is at, so only the tail is read).

For each store: the state changelog gets `agents` agent states (one agent's state after an hour of
traffic, with a live lease), a worker starts (a first recovery, from the changelog alone) and stops
cleanly, 1% of the agents' states change, and the worker starts again: `recovery_s` is that restart's
recovery (in the worker's log, from Faust's "Setting newly assigned partitions" to its "Recovery complete":
the group join before it is the broker's and the same for both stores), `ready_s` the process
start to "Worker: Ready" (Python's start-up included). Then a sample of agents is asked for a lease: an
agent whose state came back answers with its learned call size (`verified` of `sampled`)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from spanwarden.bench.detectors import traffic
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.record_batch import SourceRecords
from spanwarden.streaming.topic_admin import ensure_topics
from spanwarden.streaming.topics import AGENT_STATE_TABLE, COMMANDS, DECISIONS

START_S = 1_800_000_000.0
SAMPLED = 20
TAIL = 0.01
_STAMP = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def agent_state() -> bytes:
    """An agent's saved state after an hour of traffic (its call sizes learned), with a lease granted."""
    shard = AgentShard(Policy.load(None), {})
    records = [r._replace(agent_id="agent", input_tokens=800 * bool(r.model), output_tokens=200 * bool(r.model))
               for r in traffic(1, 180, 7, START_S - 3600)]
    shard.process("agent", [SourceRecords(0, 0, 0, records)])
    return shard.command("agent", {"id": "bench", "type": "lease", "now_s": START_S}).state


async def _fill(bootstrap: str, topic: str, partitions: int, keys: list[bytes], state: bytes) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            compacted = {"cleanup.policy": "compact"}
            await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=compacted)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20,
                                max_request_size=16 << 20)
    await producer.start()
    try:
        pending = [await producer.send(topic, state, key=key) for key in keys]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _ask(bootstrap: str, keys: list[bytes], timeout_s: float = 60.0) -> dict[str, Any]:
    """A lease command to each agent's worker (as the gateway sends them); each one's answer."""
    consumer = AIOKafkaConsumer(DECISIONS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest")
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)  # fixed before anything is sent
        ids = {uuid.uuid4().hex: key.decode() for key in keys}
        for command_id, agent in ids.items():
            await producer.send_and_wait(COMMANDS, orjson.dumps({
                "id": command_id, "agent": agent, "type": "lease", "now_s": START_S + 1}), key=agent.encode())
        granted: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while len(granted) < len(ids) and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    doc = orjson.loads(message.value or b"{}")
                    if doc.get("command_id") in ids:
                        granted[ids[doc["command_id"]]] = doc["reply"]
        return granted
    finally:
        await producer.stop()
        await consumer.stop()


def _recovery_s(log: bytes) -> float:
    """Seconds from the partitions' assignment to Faust's "Recovery complete" in one start's log."""
    def stamp(marker: bytes) -> float:
        line = next(line for line in log.splitlines() if marker in line)
        found = _STAMP.match(line)
        assert found is not None, line
        return datetime.strptime(found.group(1).decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()

    return stamp(b"[^---Recovery]: Recovery complete") - stamp(b"Setting newly assigned partitions")


def _started(worker: WorkerProcess) -> tuple[float, float]:
    """Start the worker; (ready_s, recovery_s) of this start."""
    offset = worker.log_path.stat().st_size if worker.log_path.exists() else 0
    started = time.monotonic()
    worker.start(timeout_s=600)
    ready = time.monotonic() - started
    return ready, _recovery_s(worker.log_path.read_bytes()[offset:])


def _one_store(bootstrap: str, store: str, agents: int, partitions: int, state: bytes,
               where: Path) -> dict[str, Any]:
    app_id = f"bench-recovery-{store}-{uuid.uuid4().hex[:8]}"
    keys = [f"agent-{i:06d}".encode() for i in range(agents)]
    changelog = f"{app_id}-{AGENT_STATE_TABLE}-changelog"
    asyncio.run(_fill(bootstrap, changelog, partitions, keys, state))
    worker = WorkerProcess(bootstrap, where / f"{store}.log", partitions, app_id,
                           extra_env={"SPANWARDEN_WORKER_STORE": store, "SPANWARDEN_TRUST_SPAN_TIME": "1"})
    try:
        first_ready, first = _started(worker)
        worker.stop()
        changed = keys[:: max(1, round(1 / TAIL))]
        asyncio.run(_fill(bootstrap, changelog, partitions, changed, state))
        ready, recovery = _started(worker)
        sample = keys[:: max(1, agents // SAMPLED)][:SAMPLED]
        granted = asyncio.run(_ask(bootstrap, sample))
    finally:
        worker.stop()
    return {"recovery_s": round(recovery, 3), "ready_s": round(ready, 2),
            "first_start_recovery_s": round(first, 3), "first_start_ready_s": round(first_ready, 2),
            "tail_states": len(changed),
            "sampled": len(sample), "verified": sum(1 for a in granted.values() if a.get("p99_input_tokens"))}


def run(bootstrap: str | None, agents: int, partitions: int) -> dict[str, Any]:
    state = agent_state()
    with tempfile.TemporaryDirectory(prefix="spanwarden-bench-recovery-") as tmp:
        where = Path(tmp)
        broker = None if bootstrap else LocalBroker(log_dir=where).start()
        address = bootstrap or (broker.bootstrap if broker else "")
        try:
            asyncio.run(ensure_topics(address, partitions))
            stores = {store: _one_store(address, store, agents, partitions, state, where)
                      for store in ("memory", "rocksdb")}
        finally:
            if broker is not None:
                broker.stop()
    return {"recovery_s": stores["rocksdb"]["recovery_s"], "agents": agents, "store": "rocksdb",
            "memory_recovery_s": stores["memory"]["recovery_s"], "state_bytes_per_agent": len(state),
            "changelog_mb": round(len(state) * agents / 1e6, 1), "partitions": partitions, **{
                f"{store}_{k}": v for store, figures in stores.items() for k, v in figures.items()
                if k != "recovery_s"}}
