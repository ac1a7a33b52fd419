"""What a runtime sets for its whole process while it runs (`serve`'s embedded service, a Kafka worker through
`streaming/worker_gc.py`), and puts back when it stops. Here, not in either runtime, so both use one way.

- No automatic full (generation 2) collections. At 5,000 agents a full pass over what was promoted since
  the last `gc.freeze()` held the event loop 100-250 ms several times a minute (measured with a GC callback
  during `spanwarden bench soak`), and that was most of the loop's worst stalls. The young generations are
  still collected (0.5 ms and ~5 ms a pass), so cyclic garbage that dies young is freed as before; what is
  long-lived is frozen (`EmbeddedService._collect_garbage`). The service makes no steady cyclic garbage that
  outlives the young collections (tests/embedded/test_gc_cycles.py), so nothing is left to a full pass.
- Smaller young generations for the serve's loop (`enter(YOUNG_THRESHOLDS)`): a collection every 400 net
  allocations instead of 700, and a generation-1 pass every third instead of every eleventh. A young pass's
  cost is the young objects and what they point to (old objects' headers, mostly cold in a heap of hundreds
  of MB): at 5,000 agents the soak's longest loop
  iterations (30-60 ms of CPU, measured per iteration with a GC callback) were a third to two thirds one
  young pass of 10-43 ms. The same objects are walked either way (each survivor once per generation), in
  passes half as long; a replay of the soak's traffic through the service's ingest path (1,000 agents,
  150 s) had its longest generation-1 pass 7.3 -> 3.5 ms, for ~1% more CPU in all.
- A 1 ms GIL switch interval instead of 5 ms. The loop's thread runs pure Python almost all the time under
  load; the audit writer (and the snapshot writer) need the GIL two or three times per group commit, and
  waited up to a switch interval each time, which every kill command's acknowledgement waited behind.

Several services in one process (tests) share one setting: the first to start applies it, the last to
stop puts back what was there before."""

from __future__ import annotations

import gc
import sys
import threading

SWITCH_INTERVAL_S = 0.001
NO_FULL_COLLECTIONS = 1 << 30  # young collections between two full ones: never, in practice
YOUNG_THRESHOLDS = (400, 2)  # allocations between two young passes; young passes between two gen-1 passes

_lock = threading.Lock()
_depth = 0
_saved: tuple[tuple[int, int, int], float] | None = None


def enter(young: tuple[int, int] | None = None) -> None:
    """`young`: the young generations' thresholds to set too (the serve's YOUNG_THRESHOLDS); None keeps the
    ones in force (a Kafka worker sets its own, streaming/worker_gc.py)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (gc.get_threshold(), sys.getswitchinterval())
            gen0, gen1, _ = gc.get_threshold() if young is None else (*young, 0)
            gc.set_threshold(gen0, gen1, NO_FULL_COLLECTIONS)
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        _depth += 1


def leave() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth == 0 and _saved is not None:
            thresholds, interval = _saved
            gc.set_threshold(*thresholds)
            sys.setswitchinterval(interval)
            _saved = None


def applied() -> bool:
    return _depth > 0
