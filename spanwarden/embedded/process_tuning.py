"""What the service sets for its whole process while it serves, and puts back when it stops.

- No automatic full (generation 2) collections. At 5,000 agents a full pass over what was promoted since
  the last `gc.freeze()` held the event loop 100-250 ms several times a minute (measured with a GC callback
  during `spanwarden bench soak`), and that was most of the loop's worst stalls. The young generations are
  still collected (0.5 ms and ~5 ms a pass), so cyclic garbage that dies young is freed as before; what is
  long-lived is frozen (`EmbeddedService._collect_garbage`). The service makes no steady cyclic garbage that
  outlives the young collections (tests/embedded/test_gc_cycles.py), so nothing is left to a full pass.
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

_lock = threading.Lock()
_depth = 0
_saved: tuple[tuple[int, int, int], float] | None = None


def enter() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (gc.get_threshold(), sys.getswitchinterval())
            gen0, gen1, _ = gc.get_threshold()
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
