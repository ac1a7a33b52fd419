"""Span records the service holds are out of the cyclic collector's sight (spanwarden/embedded/untracked.py):
they were nine tenths of what each young GC pass walked at 5,000 agents. Untracked, they are still freed."""

from __future__ import annotations

import gc
from pathlib import Path

from spanwarden.bench.soak_traffic import AgentTraffic
from spanwarden.embedded.service import EmbeddedService
from spanwarden.embedded.untracked import untrack
from spanwarden.settings import Settings

FREED: list[str] = []


class _Probe(tuple[object, ...]):  # noqa: SLOT001 - a tuple subclass like SpanRecord, that says when it goes
    __slots__ = ()

    def __del__(self) -> None:
        FREED.append(str(self[0]))


def test_untracked_records_are_freed_by_their_last_reference() -> None:
    record = _Probe(("a", 1, 2.0, ("flag",)))
    assert gc.is_tracked(record)
    untrack([record, record])  # twice is harmless
    assert not gc.is_tracked(record)
    del record
    assert FREED == ["a"]


def test_the_records_waiting_in_the_service_are_not_tracked(tmp_path: Path) -> None:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t"))
    try:
        service.deliver(AgentTraffic("agent-1", 0).batch(20, service.clock()), judge_all=False)
        waiting = [entry[4] for heap in service.pipeline.arrivals.pending.values() for entry in heap]
        assert waiting and not any(gc.is_tracked(r) for r in waiting)
    finally:
        service.audit.close()
        service.state.close()
        service.journal.close()
        service.refitter.close()
        service.claim.release()
