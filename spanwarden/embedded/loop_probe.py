"""A loop-lag probe: a task that asks to wake every `interval_s` and records how late it woke. Lateness is
the time something else held the event loop (a handler, a background step), so the worst of it bounds how
long a kill command or a held long-poll could have waited. Read by `/metrics` and the soak bench."""

from __future__ import annotations

import asyncio
import time


class LoopProbe:
    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_stall_s = 0.0
        self.stalls_over_100ms = 0
        self.samples = 0

    def reset(self) -> float:
        """The worst stall so far, then start counting afresh (a bench reads it after warm-up)."""
        worst, self.max_stall_s = self.max_stall_s, 0.0
        return worst

    async def run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            late = time.perf_counter() - asked - self.interval_s
            self.samples += 1
            if late > self.max_stall_s:
                self.max_stall_s = late
            if late > 0.1:
                self.stalls_over_100ms += 1
