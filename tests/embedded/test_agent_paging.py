"""Agents paged out to disk come back exactly: a pipeline that keeps only a few agents in memory, paging the
rest out between batches, finds and decides exactly what one that keeps every agent does, and ends with
the same detector state (to the last bits of the decayed sketches' floats: a sketch saved and loaded again
sums in another order); a snapshot of a paged-out agent keeps its detectors on disk."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from spanwarden.audit_sink import MemoryAuditSink
from spanwarden.bench.detectors import traffic
from spanwarden.embedded.agent_pager import AgentPager
from spanwarden.embedded.state_store import Snapshotter, StateStore
from spanwarden.enforcers.policy import Policy
from spanwarden.pipeline import Pipeline
from tests.detectors.traffic import T0, merged, normal, runaway


def _pipeline() -> Pipeline:
    return Pipeline(Policy.load(None), MemoryAuditSink())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _trail(pipeline: Pipeline) -> list[tuple[str, str, str]]:
    audit = pipeline.audit
    assert isinstance(audit, MemoryAuditSink)
    return [(e.kind, e.agent.id, e.reason) for e in audit.entries]


def test_paged_out_agents_come_back_exactly(tmp_path: Path) -> None:
    records = merged(traffic(12, 150, seed=3, start_s=T0), normal(2, 1.5), runaway(T0 + 1.4 * 3600, 60))
    paged, whole = _pipeline(), _pipeline()
    pager = AgentPager(StateStore(tmp_path / "state.db"), paged, capacity=4)
    for start in range(0, len(records), 97):
        batch = records[start:start + 97]
        paged.process(batch)
        whole.process(batch)
        pager.evict_now()
        assert len(paged.detectors) <= 4
    assert pager.paged_out_total > 20
    assert _trail(paged) == _trail(whole) and any(kind == "decision" for kind, _, _ in _trail(whole))
    for agent_id, bank in whole.detectors.items():
        back = paged.bank(agent_id)
        assert back is not None and _same(back.to_state(), bank.to_state()), agent_id


def test_a_snapshot_of_a_paged_out_agent_keeps_its_detectors(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    pipeline = _pipeline()
    pager = AgentPager(store, pipeline, capacity=1)
    pipeline.process(traffic(2, 50, seed=1, start_s=T0))
    Snapshotter(store, pipeline).now()
    pager.evict_now()
    out = sorted(pipeline.paged_out)[0]
    saved = pager.read(out)
    pipeline.command(out, pipeline.decision(out).action, "touch the ladder only", "alice", T0 + 10**6)
    Snapshotter(store, pipeline).now()  # the agent is dirty, its detectors not in memory
    assert pager.read(out) == saved is not None
