"""Pipeline benchmark: spans through a real broker and a real `spanwarden worker` process to decisions.

Three figures from one run on one broker:
- `raw_consume_spans_per_s`: a plain aiokafka consumer reading the spans topic and decoding each message
  into records (protobuf parse + normalise: the decode the worker does), with nothing else running;
- `spans_per_s`: one worker working off a backlog of those spans, from its first records message to the
  last agent state it saves (an agent's state is saved after its findings and decisions are delivered;
  the spans are judged by their own times, so every record a saved state covers has been judged);
- `spans_per_worker_cpu_s` beside `raw_consume_spans_per_cpu_s`: the same per CPU second of the worker and
  of the plain loop, which contention on a shared machine changes less than wall time;
- `p99_span_to_decision_ms`: spans sent at half of `spans_per_s` for a bounded time; for each message, the
  time from handing it to the producer to the worker saving the state that covers it; beside it
  `p50/p99_span_to_records_ms`, the first hop of that time (to the split stage's records message), so the
  JSON says which hop the latency is in;
- `worker_cpu_us_per_span` (the worker's CPU over the backlog) beside `stage_cpu_us_per_span`: the first
  messages of the backlog through the worker's stages in this process (`worker_stages.py`); what the stages'
  total leaves out of the worker's figure is Kafka, Faust and the timers.
Timestamps are the broker messages' create times, stamped on this machine."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from spanwarden.bench.detectors import traffic
from spanwarden.bench.worker_stages import stage_costs
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, decode_request
from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from spanwarden.streaming.record_batch import decode
from spanwarden.streaming.topic_admin import ensure_topics
from spanwarden.streaming.topics import RECORDS, SPANS

MAX_WAIT_S = 300.0  # every wait below gives up after this
START_S = 1_800_000_000.0
STAGE_MESSAGES = 200  # of the backlog, for the in-process stage costs (~100,000 spans at 500 a message)


Message = tuple[bytes, bytes, int]  # agent key, OTLP body, spans in it


def _messages(agents: int, spans: int, batch: int, seed: int, start_s: float) -> list[Message]:
    """Each agent's spans in order, `batch` to a message, the agents taken in turn."""
    per_agent: dict[str, list[Any]] = defaultdict(list)
    for record in traffic(agents, max(1, spans // agents), seed, start_s):
        per_agent[record.agent_id].append(record)
    queues = [[(agent.encode(), to_request(records[i:i + batch]).SerializeToString(), len(records[i:i + batch]))
               for i in range(0, len(records), batch)] for agent, records in per_agent.items()]
    out: list[Message] = []
    for turn in range(max(len(q) for q in queues)):
        out += [q[turn] for q in queues if turn < len(q)]
    return out


async def _produce(bootstrap: str, messages: list[Message],
                   rate_msgs_per_s: float | None = None) -> list[tuple[int, int, float, int]]:
    """Send; returns (partition, offset, time handed to the producer, spans) per message."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 << 20, linger_ms=5)
    await producer.start()
    try:
        pending = []
        started = time.time()
        for i, (key, body, _) in enumerate(messages):
            if rate_msgs_per_s:
                await asyncio.sleep(max(0.0, started + i / rate_msgs_per_s - time.time()))
            pending.append((time.time(), await producer.send(SPANS, body, key=key)))
        sent = []
        for (t0, future), (_, _, spans) in zip(pending, messages, strict=True):
            meta = await future
            sent.append((meta.partition, meta.offset, t0, spans))
        return sent
    finally:
        await producer.stop()


async def _raw_consume(bootstrap: str, expected: int) -> tuple[float, float]:
    """Spans/s of a plain consume + decode loop over `expected` messages, and spans per CPU second."""
    normalizer = Normalizer(PriceTable.load())
    consumer = AIOKafkaConsumer(SPANS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_bytes=64 << 20,
                                max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        seen, spans, started, cpu = 0, 0, time.perf_counter(), time.process_time()
        deadline = time.monotonic() + MAX_WAIT_S
        while seen < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
                for message in batch:
                    spans += len(normalizer.records(decode_request(message.value or b"", PROTOBUF)))
                    seen += 1
        return spans / (time.perf_counter() - started), spans / max(1e-6, time.process_time() - cpu)
    finally:
        await consumer.stop()


async def _records_ends(bootstrap: str, partitions: int) -> dict[TopicPartition, int]:
    """Where the records topic ends now: what the worker writes next starts there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(RECORDS, p) for p in range(partitions)])
    finally:
        await consumer.stop()


async def _first_records(bootstrap: str, starts: dict[TopicPartition, int]) -> float:
    """The time of the first records message written from `starts` on, read after the run: one message per
    partition, so the bench does not read the whole records topic while the worker works."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(starts))
        pending = {tp for tp, start in starts.items() if ends[tp] > start}
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, starts[tp])
        first = float("inf")
        deadline = time.monotonic() + MAX_WAIT_S
        while pending and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=200, max_records=1)).items():
                if batch and tp in pending:
                    first = min(first, batch[0].timestamp / 1000)
                    pending.discard(tp)
                    consumer.pause(tp)
        return first
    finally:
        await consumer.stop()


async def _records_times(bootstrap: str, starts: dict[TopicPartition, int]) -> dict[tuple[int, int], float]:
    """When each spans message (partition, offset) first reached the records topic (the split stage's
    output), from the records messages written from `starts` to the topic's end now; read after the run."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(starts))
        pending = {tp for tp, start in starts.items() if ends[tp] > start}
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, starts[tp])
        out: dict[tuple[int, int], float] = {}
        deadline = time.monotonic() + MAX_WAIT_S
        while pending and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=200)).items():
                for message in batch:
                    for source in decode(message.value or b""):
                        key = (source.partition, source.offset)
                        out[key] = min(out.get(key, float("inf")), message.timestamp / 1000)
                if batch and batch[-1].offset >= ends[tp] - 1:
                    pending.discard(tp)
                    consumer.pause(tp)
        return out
    finally:
        await consumer.stop()


async def _applied(bootstrap: str, changelog: str, sent: list[tuple[int, int, float, int]],
                   keys: list[bytes]) -> dict[tuple[int, int], float]:
    """When each sent message was covered by a saved agent state (ms timestamps → s), read until every
    message is covered or MAX_WAIT_S."""
    want = {(p, o): key for (p, o, _, _), key in zip(sent, keys, strict=True)}
    done: dict[tuple[int, int], float] = {}
    consumer = AIOKafkaConsumer(changelog, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False, metadata_max_age_ms=1000,
                                fetch_max_wait_ms=20)
    await consumer.start()
    waiting: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for (p, o), key in sorted(want.items(), key=lambda kv: kv[0][1]):
        waiting[key].append((p, o))
    try:
        deadline = time.monotonic() + MAX_WAIT_S
        while len(done) < len(want) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for message in batch:
                    positions = orjson.loads(message.value or b"{}").get("positions", {})
                    queue = waiting.get(message.key or b"", [])
                    while queue and positions.get(str(queue[0][0]), [-1])[0] >= queue[0][1]:
                        done[queue.pop(0)] = message.timestamp / 1000
        return done
    finally:
        await consumer.stop()


async def _run(bootstrap: str, agents: int, spans: int, batch: int, paced_s: float, partitions: int,
               log_dir: Path) -> dict[str, Any]:
    await ensure_topics(bootstrap, partitions)
    backlog = _messages(agents, spans, batch, seed=1, start_s=START_S)
    sent = await _produce(bootstrap, backlog)
    total_spans = sum(s[3] for s in sent)
    raw, raw_per_cpu_s = await _raw_consume(bootstrap, len(sent))

    app_id = f"spanwarden-bench-{uuid.uuid4().hex[:8]}"  # a fresh group and state table for every run
    changelog = f"{app_id}-agent-state-changelog"
    # The spans carry simulated times: the worker judges them by their own times, as a replay does
    # (SPANWARDEN_TRUST_SPAN_TIME). Stamped with their receive times instead, they would wait out the lateness
    # bound, and a saved state would cover records not judged yet: the figures would leave the detectors out.
    records_start = await _records_ends(bootstrap, partitions)
    worker = WorkerProcess(bootstrap, log_dir / "worker.log", partitions, app_id,
                           extra_env={"SPANWARDEN_TRUST_SPAN_TIME": "1"})
    await asyncio.to_thread(worker.start)
    try:
        assert worker.process is not None
        process = psutil.Process(worker.process.pid)
        cpu_ready = sum(process.cpu_times()[:2])
        done = await _applied(bootstrap, changelog, sent, [m[0] for m in backlog])
        cpu_backlog = sum(process.cpu_times()[:2]) - cpu_ready  # the worker's own CPU, whatever else runs
        first = await _first_records(bootstrap, records_start)
        if len(done) < len(sent):
            raise RuntimeError(f"the worker applied {len(done)} of {len(sent)} messages in {MAX_WAIT_S:g} s; "
                               f"see {worker.log_path}")
        spans_per_s = total_spans / max(1e-3, max(done.values()) - first)

        paced = _messages(agents, int(spans_per_s * 0.5 * paced_s), batch, seed=2, start_s=START_S + 86_400)
        rate = spans_per_s * 0.5 / (total_spans / len(sent))
        paced_records_start = await _records_ends(bootstrap, partitions)
        sent_paced = await _produce(bootstrap, paced, rate)
        applied = await _applied(bootstrap, changelog, sent_paced, [m[0] for m in paced])
        latencies = [applied[(p, o)] - t0 for p, o, t0, _ in sent_paced if (p, o) in applied]
        if len(latencies) < len(sent_paced):
            raise RuntimeError(f"{len(sent_paced) - len(latencies)} paced messages were never applied")
        split_at = await _records_times(bootstrap, paced_records_start)  # the first hop, for where time goes
        split_latencies = [split_at[(p, o)] - t0 for p, o, t0, _ in sent_paced if (p, o) in split_at]
    finally:
        worker.stop()
    # the same spans through the worker's code in this process, once the worker is gone (worker_stages.py)
    stages = stage_costs([(p, o, body) for (p, o, _, _), (_, body, _) in zip(sent, backlog, strict=True)
                          ][:STAGE_MESSAGES])
    return {"spans_per_s": round(spans_per_s, 1),
            "p99_span_to_decision_ms": round(float(np.percentile(latencies, 99)) * 1000, 1),
            "raw_consume_spans_per_s": round(raw, 1),
            # CPU seconds are what contention on a shared machine changes least: the worker's per span (from
            # Ready to the backlog's end) beside the plain consume+decode loop's
            "spans_per_worker_cpu_s": round(total_spans / max(1e-6, cpu_backlog), 1),
            "raw_consume_spans_per_cpu_s": round(raw_per_cpu_s, 1),
            "spans": total_spans, "paced_spans": sum(s[3] for s in sent_paced), "messages": len(sent),
            "agents": agents, "spans_per_message": batch, "partitions": partitions,
            "p50_span_to_decision_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
            # the first hop of those: handed to the producer -> split into the records topic
            "p50_span_to_records_ms": round(float(np.percentile(split_latencies, 50)) * 1000, 1),
            "p99_span_to_records_ms": round(float(np.percentile(split_latencies, 99)) * 1000, 1),
            "worker_cpu_us_per_span": round(cpu_backlog / total_spans * 1e6, 2),
            "stage_cpu_us_per_span": stages}


def run(bootstrap: str | None = None, agents: int = 64, spans: int = 200_000, batch: int = 500,
        paced_s: float = 10.0, partitions: int = 8) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="spanwarden-bench-"))
    if bootstrap:
        return asyncio.run(_run(bootstrap, agents, spans, batch, paced_s, partitions, log_dir))
    with LocalBroker(log_dir=log_dir) as broker:
        return asyncio.run(_run(broker.bootstrap, agents, spans, batch, paced_s, partitions, log_dir))
