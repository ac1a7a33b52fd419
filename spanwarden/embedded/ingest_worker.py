"""The pipeline worker: decoded span batches wait in a bounded queue and are worked off by one task, a
chunk at a time, so no request holds the event loop for longer than one chunk takes (a 16 MiB body is
many chunks, with the loop's other work — kill commands, long-polls, the loop probe — between them).

The pipeline stays on the event loop's thread: everything else that reads or changes it (commands, access
answers, status, profiles) runs there too, so nothing needs a lock, and under the GIL a second thread would
add no parallelism, only preemption. Audit entries a chunk causes are appended without waiting
(`AuditLog.deferred`); the request is acknowledged once they are durable (group commit), while the worker
goes on with the next batch. When the queue is full the receiver answers 429 with Retry-After (OTLP
exporters retry), so memory and latency stay bounded under any load.

Urgent work goes first: while a command is being audited and published (`urgent()`), the worker's next
chunk waits (at most MAX_HOLD_S), and so do the clock's and the snapshot's steps (`calm()`): a kill then
needs a few short turns of the loop instead of a few turns each behind a chunk of spans."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from spanwarden.collector.receiver import DeliveryFailed, Overloaded
from spanwarden.collector.span_record import SpanRecord
from spanwarden.pipeline import Pipeline

CHUNK_RECORDS = 128
MAX_QUEUED_RECORDS = 100_000
MAX_HOLD_S = 0.1  # the longest the pipeline waits for urgent work (a kill command) before its next chunk


class IngestWorker:
    """`deliver(records)` puts a chunk through the pipeline (on the loop), judging up to the pipeline's
    judge limit; `audit()` is the log in force (it changes when a broken chain is acknowledged)."""

    def __init__(self, deliver: Callable[[list[SpanRecord]], None], audit: Callable[[], Any],
                 pipeline: Pipeline | None = None, max_queued_records: int = MAX_QUEUED_RECORDS,
                 chunk_records: int = CHUNK_RECORDS) -> None:
        self.deliver = deliver
        self.audit = audit
        self.pipeline = pipeline  # its judge limit's backlog is worked off here too, a step at a time
        self.max_queued_records = max_queued_records
        self.chunk_records = chunk_records
        self.queued_records = 0
        self.refused = 0  # batches answered 429
        self._queue: asyncio.Queue[tuple[list[SpanRecord], asyncio.Future[int | None]]] = asyncio.Queue()
        self._urgent = 0
        self._calm: asyncio.Event | None = None

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """While inside, the pipeline's next steps wait (up to MAX_HOLD_S): a command's audit entries, its
        publication and the long-polls it answers go through a loop that is not busy with span chunks."""
        self._urgent += 1
        try:
            yield
        finally:
            self._urgent -= 1
            if not self._urgent and self._calm is not None:
                self._calm.set()

    async def calm(self) -> None:
        """Return once no urgent work is under way, or after MAX_HOLD_S (spans are never starved)."""
        if not self._urgent:
            return
        if self._calm is None:
            self._calm = asyncio.Event()
        self._calm.clear()
        try:
            async with asyncio.timeout(MAX_HOLD_S):
                await self._calm.wait()
        except TimeoutError:
            pass

    async def take(self, records: list[SpanRecord]) -> None:
        """Queue the batch and return once it is through the pipeline and its audit entries are durable;
        Overloaded when the queue is full (nothing of the batch was taken)."""
        if self.queued_records and self.queued_records + len(records) > self.max_queued_records:
            self.refused += 1
            raise Overloaded(f"{self.queued_records:,} spans are waiting for the pipeline; retry shortly", 1)
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.queued_records += len(records)
        self._queue.put_nowait((records, done))
        ticket = await done
        if ticket is not None:
            await self.audit().durable(ticket)

    async def run(self) -> None:
        """Work the queue off until cancelled (a supervised task); batches still queued then are answered
        503 (OTLP exporters retry them)."""
        try:
            while True:
                await self._work(*await self._queue.get())
        finally:
            while not self._queue.empty():
                records, done = self._queue.get_nowait()
                self.queued_records -= len(records)
                if not done.done():
                    done.set_exception(DeliveryFailed("the pipeline is stopping; retry"))

    async def _work(self, records: list[SpanRecord], done: asyncio.Future[int | None]) -> None:
        try:
            for chunk in _chunks(records, self.chunk_records):
                await self.calm()
                with self._deferred():
                    self.deliver(chunk)
                await asyncio.sleep(0)  # whatever else is waiting on the loop runs now
            while self.pipeline is not None and self.pipeline.backlog():  # the batch's records judged
                await self.calm()
                with self._deferred():
                    self.pipeline.judge_due()
                await asyncio.sleep(0)
            audit = self.audit()
            ticket = audit.last_ticket if hasattr(audit, "last_ticket") else None
            if not done.done():
                done.set_result(ticket)
        except Exception as exc:  # noqa: BLE001 - the request answers it (503 for an unwritable audit)
            if not done.done():
                done.set_exception(exc)
        finally:
            self.queued_records -= len(records)

    def _deferred(self) -> contextlib.AbstractContextManager[Any]:
        deferred = getattr(self.audit(), "deferred", None)
        return deferred() if deferred is not None else contextlib.nullcontext()


def _chunks(records: list[SpanRecord], size: int) -> Iterator[list[SpanRecord]]:
    for start in range(0, len(records), size):
        yield records[start:start + size]
