"""Supervised background work: every task a runtime runs beside its HTTP app (the clock, the snapshot, the
Datadog flush, the Kafka followers, the audit writer, ...) and every thread it depends on (the notifier)
is started or watched here by name. One that dies is never silent: it is logged with its error, `/healthz`
answers 503 naming it, and when what it did is needed to audit or enforce (`stops_intake`), the durability
middleware refuses spans and commands until the service is restarted — decisions must not flow unaudited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("spanwarden.supervisor")


@dataclass
class _Watched:
    stops_intake: bool
    task: asyncio.Task[None] | None = None
    probe: Callable[[], str | None] | None = None  # for a thread: None while it is fine, else why not
    died: str | None = None
    waiters: list[Callable[[str], None]] = field(default_factory=list)


class Supervisor:
    def __init__(self) -> None:
        self._work: dict[str, _Watched] = {}
        self.stopping = False

    def start(self, name: str, run: Callable[[], Awaitable[None]], *, stops_intake: bool,
              on_death: Callable[[str], None] | None = None) -> asyncio.Task[None]:
        """Run `run()` as the task `name` on the running loop; `on_death(why)` is called if it dies."""
        running = self._work[name].task if name in self._work else None
        if running is not None and not running.done():
            raise ValueError(f"a task named {name!r} is already running")

        async def wrapped() -> None:
            await run()

        task = asyncio.get_running_loop().create_task(wrapped(), name=f"spanwarden:{name}")
        watched = self._work[name] = _Watched(stops_intake, task)
        if on_death is not None:
            watched.waiters.append(on_death)
        task.add_done_callback(lambda done: self._ended(name, done))
        return task

    def watch(self, name: str, probe: Callable[[], str | None], *, stops_intake: bool) -> None:
        """Watch work the runtime does not run as a task (a thread): `probe()` says why it is not working,
        or None while it is."""
        self._work[name] = _Watched(stops_intake, probe=probe)

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self.stopping:
            return
        if task.cancelled():
            why = "cancelled"
        elif (exc := task.exception()) is not None:
            why = f"{type(exc).__name__}: {exc}"
            log.error("background task %s died", name, exc_info=exc)
        else:
            why = "ended while the service was running"
        watched = self._work[name]
        watched.died = why
        log.error("background task %s is dead (%s): /healthz answers 503%s", name, why,
                  "; spans and commands are refused" if watched.stops_intake else "")
        for waiter in watched.waiters:
            waiter(why)

    def problems(self, intake_only: bool = False) -> dict[str, str]:
        """What is dead, by name, and why (only what stops intake, if asked)."""
        out = {}
        for name, watched in self._work.items():
            if intake_only and not watched.stops_intake:
                continue
            why = watched.died if watched.probe is None else watched.probe()
            if why is not None:
                out[name] = why
        return out

    def view(self) -> dict[str, str]:
        """Each task's state for `/healthz`: "running", or "dead: why"."""
        dead = self.problems()
        return {name: f"dead: {dead[name]}" if name in dead else "running" for name in sorted(self._work)}

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let the tasks end (they watch the runtime's stopping event), then cancel what is left."""
        self.stopping = True
        tasks = [w.task for w in self._work.values() if w.task is not None and not w.task.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
