"""A loop-lag probe: a task that asks to wake every `interval_s` and records how late it woke. Lateness is
the time something else held the event loop (a handler, a background step), so the worst of it bounds how
long a kill command or a held long-poll could have waited. Read by `/metrics` and the soak bench.

Beside the wall-clock lateness it records the CPU time the loop's thread spent between two wakes
(`max_held_s`): what the service's own code held the loop for, without the time a busy machine kept the
process off its cores — the figure a test can hold the service to on a shared machine."""

from __future__ import annotations

import asyncio
import time


class LoopProbe:
    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_stall_s = 0.0
        self.max_held_s = 0.0
        self.stalls_over_100ms = 0
        self.samples = 0

    def reset(self) -> None:
        """Start counting afresh (after a warm-up)."""
        self.max_stall_s = self.max_held_s = 0.0
        self.stalls_over_100ms = 0

    async def run(self) -> None:
        while True:
            asked, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.interval_s)
            late = time.perf_counter() - asked - self.interval_s
            held = time.thread_time() - cpu
            self.samples += 1
            self.max_stall_s = max(self.max_stall_s, late)
            self.max_held_s = max(self.max_held_s, held)
            if late > 0.1:
                self.stalls_over_100ms += 1
