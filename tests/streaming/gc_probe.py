"""`python -m tests.streaming.gc_probe worker`: `spanwarden worker` as it runs (`worker.run`: the same build,
the same collector tuning), plus a probe for `test_worker_gc.py`. When the file named by GC_PROBE_REQUEST
appears, the probe takes a full collection of everything, frozen objects included, and writes to
GC_PROBE_RESULT the number of cyclic garbage objects per type of the worker's own code and of the libraries
it runs on. With GC_PROBE_LEAK=1 each detect round makes a cycle that lives through a freeze, then is dropped (the
mutation the count must find)."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from spanwarden import process_tuning
from spanwarden.settings import Settings
from spanwarden.streaming import worker
from spanwarden.streaming.agent_shard import AgentShard

OURS = ("spanwarden", "collector", "detectors", "enforcers", "dashboards", "faust", "mode", "aiokafka",
        "asyncio", "orjson")


def garbage_of_ours() -> dict[str, Any]:
    gc.collect(1)  # what the young collections free while the worker works
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                        if type(o).__module__.split(".")[0] in OURS)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return {"found": dict(found), "full_collections_off": process_tuning.applied(),
            "threshold": list(gc.get_threshold())}


def with_probe(build: Any, request: Path, result: Path) -> Any:
    def probed(settings: Settings) -> Any:
        built = build(settings)

        @built.app.timer(interval=0.2)
        async def probe() -> None:
            if request.exists():
                request.unlink()
                result.write_bytes(orjson.dumps(garbage_of_ours()))

        return built

    return probed


def leak_a_cycle_each_round() -> None:
    kept: list[tuple[int, Any]] = []
    process = AgentShard.process

    def leaky(self: AgentShard, agent_id: str, sources: Any) -> Any:
        event = asyncio.Event()
        event.itself = event  # type: ignore[attr-defined]  # a cycle, of a class the count looks at
        frozen = gc.get_freeze_count()
        kept.append((frozen, event))  # it lives through a freeze, then goes: only a full pass would free it
        while kept[0][0] < frozen:
            kept.pop(0)
        return process(self, agent_id, sources)

    AgentShard.process = leaky  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get("GC_PROBE_LEAK") == "1":
        leak_a_cycle_each_round()
    worker.build = with_probe(worker.build, Path(os.environ["GC_PROBE_REQUEST"]),  # type: ignore[assignment]
                              Path(os.environ["GC_PROBE_RESULT"]))
    sys.argv = [sys.argv[0], "worker"]  # Faust reads its command line
    worker.run(Settings())
