"""Detector benchmark: records per second through `Pipeline.process` — every detector, the ladder, and the
audit log as served (a file log with the shipped fsync `always`, its appends grouped per chunk of records as
the service's pipeline worker does) — at thousands of agents on one core; beside it the bare detectors, and
the memory each agent's detector state takes."""

from __future__ import annotations

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
from spanwarden.pipeline import Pipeline


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


def pipeline_rate(records: list[SpanRecord], fsync: str = "always") -> dict[str, Any]:
    """Records/s through `Pipeline.process` in chunks, each chunk's audit entries one group commit; the first
    half of the records warms the agents up (their detectors are made), the second half is timed."""
    directory = Path(tempfile.mkdtemp(prefix="spanwarden-bench-"))
    audit = AuditLog(directory / "audit.jsonl", fsync=fsync)
    pipeline = Pipeline(Policy.load(None), audit)
    half = len(records) // 2

    def feed(part: list[SpanRecord]) -> None:
        for start in range(0, len(part), CHUNK_RECORDS):
            with audit.deferred():
                pipeline.process(part[start:start + CHUNK_RECORDS])
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
