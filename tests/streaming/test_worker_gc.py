"""A worker runs no automatic full GC passes and freezes what lives on (`streaming/worker_gc.py`), so cyclic
garbage that outlives the young collections would never be freed. This test checks a real worker on the
broker makes none: after rounds of spans for many agents (split, records topic, detect, the state table,
the activity and priors timers), a full collection of everything in the worker process (the frozen objects
too) finds next to no garbage of the worker's own classes or of Faust, aiokafka and asyncio. The mutation
check: a cycle that lives through a freeze for each detect round is found."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from spanwarden.bench.pipeline import START_S, _applied, _messages, _produce
from spanwarden.streaming.local_stack import LocalBroker, WorkerProcess
from tests.streaming.conftest import PARTITIONS

ROOT = Path(__file__).resolve().parents[2]
AGENTS = 40
ROUNDS = 8
PAUSE_S = 1.5  # the rounds span several freezes
ALLOWED = 50  # a handful in flight at the moment of the count (a batch being worked on)


def _run_worker(broker: LocalBroker, tmp_path: Path, leak: bool) -> dict[str, Any]:
    request, result = tmp_path / "probe-request", tmp_path / "probe-result.json"
    app_id = "gc-probe"
    worker = WorkerProcess(broker.bootstrap, tmp_path / "worker.log", PARTITIONS, app_id,
                           extra_env={"SPANWARDEN_TRUST_SPAN_TIME": "1", "GC_PROBE_REQUEST": str(request),
                                      "GC_PROBE_RESULT": str(result), "GC_PROBE_LEAK": "1" if leak else "0"},
                           cli=[sys.executable, "-m", "tests.streaming.gc_probe"], cwd=ROOT)
    worker.start()
    try:
        for n in range(ROUNDS):  # each round: every agent's next minutes of spans, until the worker saved them
            messages = _messages(AGENTS, AGENTS * 40, 20, seed=n, start_s=START_S + n * 3600)
            sent = asyncio.run(_produce(broker.bootstrap, messages))
            done = asyncio.run(_applied(broker.bootstrap, f"{app_id}-agent-state-changelog", sent,
                                        [m[0] for m in messages]))
            assert len(done) == len(sent), f"round {n}: {len(done)} of {len(sent)} applied; see {worker.log_path}"
            time.sleep(PAUSE_S)  # the timers' turns, and the freezes (`worker_gc.FREEZE_EVERY_S`)
        request.touch()
        deadline = time.monotonic() + 60
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert result.exists(), f"the probe did not answer; see {worker.log_path}"
        return orjson.loads(result.read_bytes())  # type: ignore[no-any-return]
    finally:
        worker.stop()


def test_a_worker_makes_no_lasting_cyclic_garbage(broker: LocalBroker, tmp_path: Path) -> None:
    probe = _run_worker(broker, tmp_path, leak=False)
    assert probe["full_collections_off"], probe  # the tuning is on in the worker process
    assert sum(probe["found"].values()) < ALLOWED, probe["found"]


def test_the_count_finds_a_cycle_kept_for_each_detect_round(broker: LocalBroker, tmp_path: Path) -> None:
    probe = _run_worker(broker, tmp_path, leak=True)
    assert probe["found"].get("asyncio.locks.Event", 0) >= 6, probe["found"]
