"""How a worker process sets the garbage collector while it runs (and what `bench pipeline`'s in-process stage
costs set, to measure the same thing).

- Young collections rarely: each span makes dozens of short-lived objects (protobuf views, records, JSON
  rows); with the default gen-0 threshold (700) the cycle collector ran every few spans (about 11% of a
  worker's time).
- No automatic full collections, a 1 ms switch interval: the serve's own tuning (`spanwarden/process_tuning.py`,
  one place for both runtimes). A full pass walks every agent's baselines, promoted since the last freeze.
- What lives on is frozen out of the collector's walk every `FREEZE_EVERY_S` (a young collection first, so
  what is frozen is what lives). Objects are still freed as they go; only cyclic garbage that outlives the
  young collections would stay, and a worker makes none (tests/streaming/test_worker_gc.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from spanwarden import process_tuning

YOUNG = (100_000, 50)  # gen-0 allocations, gen-0 passes per gen-1 pass
FREEZE_EVERY_S = 5.0


@contextmanager
def tuned() -> Iterator[None]:
    """The worker's GC settings for the block; what was set before is put back after it."""
    was = gc.get_threshold()
    gc.set_threshold(*YOUNG, was[2])
    process_tuning.enter()
    try:
        yield
    finally:
        process_tuning.leave()
        gc.set_threshold(*was)


def freeze_long_lived() -> None:
    """Collect the young generations and freeze the survivors (only while the process is tuned: a worker
    built inside a test process leaves that process's collector alone)."""
    if process_tuning.applied():
        gc.collect(1)
        gc.freeze()
