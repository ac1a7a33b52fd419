"""The audit log's writer thread, with group commit: entries sealed (hashed and chained) by their callers
are queued here, and the thread writes whatever has gathered in one write, one fsync of the log and one of
its head file, then acknowledges all of them at once. Under fsync `always` an entry is acknowledged only
once it is on disk; a caller waits for its ticket (`wait`, or `future` from an event loop).

A group the disk refuses (full, I/O error) is cut back out of the file, and it and every entry queued after
it fail: their callers get `AuditUnwritable`, and the chain goes back to the last entry on disk
(`on_failure`), so the log never holds half an entry nor one chained to an entry that is not there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

FAILURES_KEPT = 64


Queued = tuple[int, int, str, bytes, str, str]  # ticket, seq, hash, line, agent, kind


@dataclass
class _Waiter:
    ticket: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


@dataclass
class _Failure:
    first: int
    last: int
    error: Exception


@dataclass
class _State:
    queue: list[Queued] = field(default_factory=list)
    done: int = 0  # every ticket up to this one has been handled (written, or failed)
    failures: list[_Failure] = field(default_factory=list)
    waiters: list[_Waiter] = field(default_factory=list)
    stopping: bool = False


class GroupWriter:
    """`write_group(group)` writes and syncs a group of queued entries; an exception of `durable_errors`
    means the group is on disk all the same (its head file is not), any other that it was cut back out, and
    then `on_failure()` is called, under the caller's sealing lock, to roll the chain back."""

    def __init__(self, write_group: Callable[[list[Queued]], None], on_failure: Callable[[], None],
                 seal_lock: threading.Lock, durable_errors: tuple[type[Exception], ...] = ()) -> None:
        self._write_group = write_group
        self._durable_errors = durable_errors
        self._on_failure = on_failure
        self._seal_lock = seal_lock
        self._cv = threading.Condition()
        self._state = _State()
        self._next_ticket = 0
        self.groups = 0  # figures: groups written, entries in them
        self.entries = 0
        self._thread = threading.Thread(target=self._run, name="spanwarden-audit-writer", daemon=True)
        self._thread.start()

    def submit(self, seq: int, digest: str, line: bytes, agent: str = "", kind: str = "") -> int:
        """Queue a sealed entry (call with the sealing lock held, so tickets follow the chain); its ticket."""
        with self._cv:
            self._next_ticket += 1
            self._state.queue.append((self._next_ticket, seq, digest, line, agent, kind))
            self._cv.notify_all()
            return self._next_ticket

    @property
    def last_ticket(self) -> int:
        return self._next_ticket

    def _outcome(self, ticket: int) -> Exception | None | bool:
        """The error a handled ticket failed with, None if it is durable, False while it is pending."""
        state = self._state
        for failure in reversed(state.failures):
            if failure.first <= ticket <= failure.last:
                return failure.error
        return None if ticket <= state.done else False

    def wait(self, ticket: int, timeout_s: float = 60.0) -> None:
        """Block until the ticket's entry is acknowledged; raise what made it fail."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._outcome(ticket) is not False, timeout_s):
                raise TimeoutError(f"audit entry not written within {timeout_s:g} s")
            outcome = self._outcome(ticket)
        if isinstance(outcome, Exception):
            raise type(outcome)(str(outcome)) from outcome

    def future(self, ticket: int) -> asyncio.Future[None]:
        """An event-loop future for the ticket's acknowledgement (the loop is never blocked waiting)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cv:
            outcome = self._outcome(ticket)
            if outcome is False:
                self._state.waiters.append(_Waiter(ticket, loop, future))
                return future
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(None)
        return future

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._cv:
            self._state.stopping = True
            self._cv.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        state = self._state
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(state.queue) or state.stopping)
                if not state.queue and state.stopping:
                    return
                group, state.queue = state.queue, []
            error: Exception | None = None
            try:
                self._write_group(group)
            except self._durable_errors as exc:  # on disk, but its head file is not: tell the callers
                error = exc
                with self._cv:
                    self._fail(group[0][0], group[-1][0], exc)
            except Exception as exc:  # noqa: BLE001 - cut back out: it and all queued after it fail
                error = exc
                with self._seal_lock, self._cv:  # the chain goes back to the last entry on disk
                    dropped, state.queue = state.queue, []
                    self._on_failure()
                    self._fail(group[0][0], dropped[-1][0] if dropped else group[-1][0], exc)
            with self._cv:
                if error is None:
                    self.groups += 1
                    self.entries += len(group)
                state.done = max(state.done, group[-1][0])
                self._wake()
                self._cv.notify_all()

    def _fail(self, first: int, last: int, error: Exception) -> None:
        self._state.failures.append(_Failure(first, last, error))
        del self._state.failures[:-FAILURES_KEPT]
        self._state.done = max(self._state.done, last)

    def _wake(self) -> None:
        pending = []
        for waiter in self._state.waiters:
            outcome = self._outcome(waiter.ticket)
            if outcome is False:
                pending.append(waiter)
                continue
            waiter.loop.call_soon_threadsafe(_settle, waiter.future, outcome)
        self._state.waiters = pending


def _settle(future: asyncio.Future[None], outcome: Exception | None | bool) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(None)


