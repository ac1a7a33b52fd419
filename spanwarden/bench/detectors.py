"""Detector benchmark: records per second through `Pipeline.process` — every detector, the ladder, and the
audit log as served (a file log with the shipped fsync `always`, its appends grouped per chunk of records as
the service's pipeline worker does) — at thousands of agents on one core; beside it the bare detectors, and
the memory each agent's detector state takes."""

from __future__ import annotations

import gc
import json
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from spanwarden.collector.span_record import SpanRecord, make_record
from spanwarden.detectors.agent_detectors import AgentDetectors
from spanwarden.embedded.ingest_worker import CHUNK_RECORDS
from spanwarden.enforcers.audit_log import AuditLog
from spanwarden.enforcers.policy import Policy
from spanwarden.event_time import TimeBounds
from spanwarden.pipeline import Pipeline
from spanwarden.settings import Settings

SERVE_JUDGE_LIMIT = 128  # `EmbeddedService`'s pipeline.judge_limit


def traffic(agents: int, per_agent: int, seed: int = 0, start_s: float = 1_800_000_000.0) -> list[SpanRecord]:
    """Interleaved records of `agents` agents: LLM calls with cost, tool calls touching tables, rare errors."""
    rng = random.Random(seed)
    t = start_s
    out = []
    for i in range(agents * per_agent):
        t += rng.expovariate(agents / 20.0)  # each agent calls about every 20 s
        agent = f"agent-{rng.randrange(agents)}"
        tool = rng.random() < 0.5
        out.append(make_record(
            agent_id=agent, span_id=f"{i:016x}", trace_id=f"{i:032x}", end_ns=int(t * 1e9),
            model="gpt-4o-mini", cost_usd=0.0 if tool else rng.lognormvariate(-6, 0.7),
            tool_name="sql_query" if tool else "", resource=f"db:pg:app.t{rng.randrange(12)}" if tool else "",
            rows=rng.randrange(500) if tool else 0, fingerprint=f"tool:sql_query:{rng.randrange(10**6)}"
            if tool else "llm:gpt-4o-mini", is_error=rng.random() < 0.02,
        ))
    return out


def _feed(records: list[SpanRecord]) -> dict[str, AgentDetectors]:
    banks: dict[str, AgentDetectors] = {}
    for record in records:
        bank = banks.get(record.agent_id)
        if bank is None:
            bank = banks[record.agent_id] = AgentDetectors(record.agent_id)
        bank.observe(record)
        bank.behaviour.normal_vectors.clear()  # as the pipeline does, moving them to the fleet's reservoir
    return banks


def received(records: list[SpanRecord], seed: int = 0, delay_s: float = 0.5) -> list[SpanRecord]:
    """The records as a service receives them: each up to `delay_s` after its end, in order of receipt."""
    rng = random.Random(seed)
    stamped = [r._replace(received_s=r.time_s + rng.uniform(0.0, delay_s)) for r in records]
    stamped.sort(key=lambda r: r.received_s)
    return stamped


def pipeline_rate(records: list[SpanRecord], fsync: str = "always", bounds: TimeBounds | None = None,
                  judge_limit: int | None = None) -> dict[str, Any]:
    """Records/s through `Pipeline.process` in chunks, each chunk's audit entries one group commit; the first
    half of the records warms the agents up (their detectors are made), the second half is timed. With
    `bounds` and `judge_limit` (the serve's: records held for the lateness bound, at most so many judged per
    step, the rest worked off after each chunk) as the service's ingest worker runs it."""
    gc.collect()  # an earlier run's pipeline (its stages hold it in cycles) would else weigh on this one's GC
    directory = Path(tempfile.mkdtemp(prefix="spanwarden-bench-"))
    audit = AuditLog(directory / "audit.jsonl", fsync=fsync)
    pipeline = Pipeline(Policy.load(None), audit, time_bounds=bounds)
    pipeline.judge_limit = judge_limit
    half = len(records) // 2

    def feed(part: list[SpanRecord]) -> None:
        for start in range(0, len(part), CHUNK_RECORDS):
            with audit.deferred():
                pipeline.process(part[start:start + CHUNK_RECORDS])
            while pipeline.backlog():
                with audit.deferred():
                    pipeline.judge_due()
            audit.wait()

    try:
        feed(records[:half])
        entries, started, cpu = audit.seq, time.perf_counter(), time.process_time()
        feed(records[half:])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        audit.close()
    # Per CPU second of this process (the audit writer's thread included) beside wall time: what contention
    # on a shared machine changes least.
    return {"records_per_s": round((len(records) - half) / elapsed, 1),
            "records_per_cpu_s": round((len(records) - half) / max(cpu, 1e-6), 1),
            "audit_entries": audit.seq - entries, "agents": len(pipeline.detectors)}


def run_pipeline(agents: int = 5000, per_agent: int = 40) -> dict[str, Any]:
    records = traffic(agents, per_agent)
    return pipeline_rate(records)


def run_served_bounds(agents: int = 5000, per_agent: int = 40) -> dict[str, Any]:
    """`run_pipeline` with the serve's time bounds and judge limit, the records stamped as received: what the
    embedded serve's pipeline does per record (each held in its agent's buffer for the lateness bound)."""
    settings = Settings()
    records = received(traffic(agents, per_agent))
    return pipeline_rate(records, bounds=TimeBounds(settings.max_lateness_s, settings.max_skew_s),
                         judge_limit=SERVE_JUDGE_LIMIT)


def run(agents: int = 200, per_agent: int = 1000) -> dict[str, Any]:
    records = traffic(agents, per_agent)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    banks = _feed(records)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    banks.clear()
    started = time.perf_counter()  # timed again without tracemalloc, which slows the loop
    banks = _feed(records)
    elapsed = time.perf_counter() - started
    json_bytes = sum(len(json.dumps(b.to_state())) for b in banks.values()) / len(banks)
    return {"records_per_s": round(len(records) / elapsed, 1), "bytes_per_agent": round(held / len(banks), 1),
            "state_json_bytes_per_agent": round(json_bytes, 1), "agents": len(banks)}
