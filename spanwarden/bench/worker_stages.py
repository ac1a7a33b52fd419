"""Where a worker's CPU goes, stage by stage: the bench's own spans through the worker's code in this process
(no broker), as CPU microseconds per span. Beside `spans_per_worker_cpu_s` it tells the stages apart from
what they do not cover (Kafka and Faust: fetching, producing, the state table, timers).

The stages, in the worker's order: protobuf `decode`, `normalise`, the `trace_stage` (one cost per call,
agents from the trace), the records topic's `records_encode` and `records_decode`, the `pipeline` (detectors,
ladder, audit: `AgentShard.process`, as the detect agent calls it) and the `activity` rollups. The garbage
collector is set as the worker sets it (`streaming/worker_gc.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, decode_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord
from spanwarden.collector.trace_stage import TraceStage
from spanwarden.enforcers.policy import Policy
from spanwarden.streaming import record_batch, worker_gc
from spanwarden.streaming.activity_rollup import ActivityRollup
from spanwarden.streaming.agent_shard import AgentShard
from spanwarden.streaming.record_batch import SourceRecords
from spanwarden.streaming.span_splitter import pack

_T = TypeVar("_T")


def stage_costs(bodies: list[tuple[int, int, bytes]]) -> dict[str, float]:
    """CPU us per span of each stage over these spans-topic messages ((partition, offset, OTLP body))."""
    spent: dict[str, float] = {}

    def timed(stage: str, work: Callable[[], _T]) -> _T:
        started = time.process_time()
        result = work()
        spent[stage] = time.process_time() - started
        return result

    with worker_gc.tuned():
        normalizer = Normalizer(PriceTable.load())
        requests = timed("decode", lambda: [decode_request(body, PROTOBUF) for _, _, body in bodies])
        normalised = timed("normalise", lambda: [normalizer.records(request) for request in requests])
        stage = TraceStage()
        staged = timed("trace_stage", lambda: [stage.process(records) for records in normalised])
        by_agent = _by_agent(bodies, staged)
        chunks = [(agent, chunk) for agent, sources in by_agent.items() for chunk in pack(sources)]
        encoded = timed("records_encode", lambda: [(agent, record_batch.encode(c)) for agent, c in chunks])
        decoded = timed("records_decode", lambda: [(agent, record_batch.decode(p)) for agent, p in encoded])
        shard = AgentShard(Policy.load(None), {}, time_bounds=None)  # span times trusted, as the bench's worker
        outputs = timed("pipeline", lambda: [shard.process(agent, sources) for agent, sources in decoded])
        rollup = ActivityRollup()

        def roll_up() -> None:
            for out in outputs:
                rollup.add(out.applied)
            rollup.drain()

        timed("activity", roll_up)
    spans = max(1, sum(len(records) for records in staged))
    costs = {stage: round(seconds / spans * 1e6, 2) for stage, seconds in spent.items()}
    costs["total"] = round(sum(costs.values()), 2)
    return costs


def _by_agent(bodies: list[tuple[int, int, bytes]],
              staged: list[list[SpanRecord]]) -> dict[str, list[SourceRecords]]:
    out: dict[str, list[SourceRecords]] = {}
    for (partition, offset, _), records in zip(bodies, staged, strict=True):
        grouped: dict[str, list[SpanRecord]] = {}
        for r in records:
            grouped.setdefault(r.agent_id, []).append(r)
        for agent, mine in grouped.items():
            out.setdefault(agent, []).append(SourceRecords(partition, offset, 0, mine))
    return out
