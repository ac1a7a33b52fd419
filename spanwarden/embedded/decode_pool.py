"""The decode pool: the stateless front of ingest (gzip, protobuf or JSON decode, normalisation) on the
machine's other cores, in a few persistent child processes (decode_child.py), while the event loop keeps
the trace stage, the caps and the pipeline.

The loop sends a raw body (with its content type and encoding) to the child with the fewest bodies in
flight and gets the records back in the records topic's columnar format (~1 us a span to read). A bad body
raises the receiver's own error again (400/413/415, the same one-line message); a child that dies fails
its bodies with `ChildLost` (503 with Retry-After: OTLP exporters retry) and is started again; a child
that does not answer within `answer_s` is killed (the same). `close()` ends every child: their socket
closed, then SIGKILL for one that does not exit within a second. A new price table reaches every child
(and each one started later)."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from spanwarden.collector import otlp_decode
from spanwarden.collector.receiver import DeliveryFailed
from spanwarden.collector.span_record import SpanRecord
from spanwarden.embedded.decode_child import ANSWER, OK, OTLP, REQUEST
from spanwarden.streaming import record_batch

log = logging.getLogger(__name__)
START_S = 30.0  # a child's start (its imports) and first price table, at most
ANSWER_S = 30.0  # one body's answer, at most (a 16 MiB body takes well under a few seconds)
RESTART_PAUSE_S = 1.0  # between restarts of a child that died at once
_ERRORS: dict[str, type[otlp_decode.OtlpError]] = {
    c.__name__: c for c in (otlp_decode.OtlpError, otlp_decode.MalformedPayload,
                            otlp_decode.UnsupportedMediaType, otlp_decode.PayloadTooLarge)}


def default_processes() -> int:
    """Sized to the machine: one core stays the loop's; none on a single core (decode in-process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores - 1))


class ChildLost(DeliveryFailed):
    """The decode process died or hung with the body in it: 503, retry after a second."""

    retry_after_s = 1


class DecodePoolUnavailable(RuntimeError):
    """Not one decode process started."""


class DecodeFailed(RuntimeError):
    """The child could not normalise a valid body (a bug, not bad input): a 500, as in-process."""


class _Child(asyncio.Protocol):
    """One child process and the loop's end of its socket: frames written to the transport, answers parsed
    as they arrive (no task or coroutine per body) and given to the bodies in the order they were sent."""

    def __init__(self, index: int, lost: Any) -> None:
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[asyncio.Future[tuple[int, bytes]], float]] = collections.deque()
        self.ready: asyncio.Future[None] | None = None
        self.started = 0.0
        self._buffer = bytearray()
        self._lost = lost  # called once the socket is closed (the child died, or was killed)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        size, taken = ANSWER.size, 0
        while len(buffer) - taken >= size:
            status, length = ANSWER.unpack_from(buffer, taken)
            if len(buffer) - taken - size < length:
                break
            payload = bytes(buffer[taken + size:taken + size + length])
            taken += size + length
            if self.pending:
                answer, _ = self.pending.popleft()
                if not answer.done():
                    answer.set_result((status, payload))
        if taken:
            del buffer[:taken]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._buffer.clear()
        self._lost(self)

    def send(self, meta: dict[str, Any], body: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self.transport is None or self.transport.is_closing():
            raise ChildLost(f"decode process {self.index} is gone; retry")
        head = orjson.dumps(meta)
        answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.pending.append((answer, time.monotonic()))
        self.transport.write(b"".join((REQUEST.pack(len(head), len(body)), head, body)))  # one send
        return answer

    def usable(self) -> bool:
        return (self.transport is not None and self.ready is not None and self.ready.done()
                and self.ready.exception() is None)

    def fail(self, why: str) -> None:
        while self.pending:
            answer, _ = self.pending.popleft()
            if not answer.done():
                answer.set_exception(ChildLost(why))
                answer.exception()  # retrieved: nobody may be waiting for it any more

    def kill(self) -> None:
        """Kill the process: its socket's end of file brings it back; bodies meanwhile wait for the new one."""
        if self.ready is not None and self.ready.done():
            self.ready = asyncio.get_running_loop().create_future()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


class DecodePool:
    """`await start()`, then `await records(body, content_type, encoding, max_bytes)`; `await close()`."""

    def __init__(self, processes: int, price_file: Path | None, default_price: tuple[float, float],
                 answer_s: float = ANSWER_S) -> None:
        if processes < 1:
            raise ValueError(f"a decode pool needs at least one process, not {processes}")
        self.children = [_Child(i, self._on_lost) for i in range(processes)]
        self.prices: dict[str, Any] = {"k": "p", "f": str(price_file) if price_file else None,
                                       "d": list(default_price)}
        self.answer_s = answer_s
        self.restarts = 0  # children started again after dying (/metrics)
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start every child; DecodePoolUnavailable when none could start (the caller decodes in-process)."""
        await asyncio.gather(*(self._spawn(c) for c in self.children))
        if not any(c.usable() for c in self.children):
            await self.close()
            raise DecodePoolUnavailable(f"no decode process could start ({sys.executable} -m "
                                        "spanwarden.embedded.decode_child)")
        self._keep(self._watch())

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.children if c.process is not None and c.process.poll() is None]

    async def records(self, body: bytes, content_type: str, encoding: str, max_bytes: int) -> list[SpanRecord]:
        """The body's records; the receiver's OtlpError for a bad body, ChildLost when its child died."""
        meta = {"k": "d", "t": content_type, "e": encoding, "m": max_bytes}
        status, payload = await self._ask(meta, body)
        if status == OK:
            return record_batch.decode(payload)[0].records
        said = orjson.loads(payload)
        if status == OTLP:
            error = _ERRORS.get(said["c"], otlp_decode.MalformedPayload)(said["m"])
            error.status = int(said["s"])
            raise error
        raise DecodeFailed(f"the decode process could not normalise the body ({said['c']}: {said['m']})")

    async def set_prices(self, price_file: Path | None, default_price: tuple[float, float]) -> None:
        """Every child loads the price table (a bad file raises here, from the first child); children started
        later load it too."""
        self.prices = {"k": "p", "f": str(price_file) if price_file else None, "d": list(default_price)}
        answers = await asyncio.gather(*(self._ask(self.prices, b"", child) for child in self.children))
        for status, payload in answers:
            if status != OK:
                raise ValueError(orjson.loads(payload)["m"])

    async def close(self) -> None:
        """End every child: its socket closed (it exits at end of file), killed if still there after 1 s."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for child in self.children:
            if child.ready is not None and not child.ready.done():
                child.ready.set_exception(ChildLost("the service is stopping; retry"))
                child.ready.exception()
            if child.transport is not None:
                child.transport.close()
        deadline = time.monotonic() + 1.0
        for child in self.children:
            process = child.process
            if process is None:
                continue
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait, 5)
            child.fail("the service is stopping; retry")

    async def _ask(self, meta: dict[str, Any], body: bytes, child: _Child | None = None) -> tuple[int, bytes]:
        if self._closing:
            raise ChildLost("the service is stopping; retry")
        child = child or min(self.children, key=_load)
        if not child.usable():
            assert child.ready is not None
            try:
                await asyncio.wait_for(asyncio.shield(child.ready), START_S)
            except TimeoutError as exc:
                raise ChildLost(f"decode process {child.index} did not start within {START_S:.0f} s") from exc
            if not child.usable():
                raise ChildLost(f"decode process {child.index} is restarting; retry")
        return await child.send(meta, body)

    async def _watch(self) -> None:
        """A child with a body unanswered for `answer_s` hangs: its bodies are answered 503, it is killed."""
        while True:
            await asyncio.sleep(min(0.5, self.answer_s / 4))
            now = time.monotonic()
            for child in self.children:
                if child.usable() and child.pending and now - child.pending[0][1] > self.answer_s:  # started
                    log.error("decode process %d gave no answer within %g s: killed", child.index, self.answer_s)
                    child.fail(f"the decode process gave no answer within {self.answer_s:g} s; retry")
                    child.kill()

    async def _spawn(self, child: _Child) -> None:
        loop = asyncio.get_running_loop()
        if child.ready is None or child.ready.done():
            child.ready = loop.create_future()
        ready = child.ready
        child.started = time.monotonic()
        ours, theirs = socket.socketpair()
        try:
            child.process = subprocess.Popen(
                [sys.executable, "-m", "spanwarden.embedded.decode_child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            ready.set_exception(ChildLost(f"decode process {child.index} could not start: {exc}"))
            ready.exception()  # retrieved: the next _ask sees it
            log.error("decode process %d could not start: %s", child.index, exc)
            return
        finally:
            theirs.close()
        await loop.connect_accepted_socket(lambda: child, ours)
        try:
            status, payload = await asyncio.wait_for(child.send(self.prices, b""), START_S)
        except (ChildLost, TimeoutError) as exc:
            child.kill()  # its end of file starts it again
            if not ready.done():
                ready.set_exception(ChildLost(str(exc) or "the decode process did not start"))
                ready.exception()
            return
        if status != OK:  # the file changed since the service read it: said here; its bodies fail (500)
            log.error("decode process %d refused the price table: %s", child.index, orjson.loads(payload)["m"])
        if not ready.done():
            ready.set_result(None)

    def _on_lost(self, child: _Child) -> None:
        if not self._closing:  # else close() reaps it
            self._keep(self._lost(child))

    async def _lost(self, child: _Child) -> None:
        process = child.process
        if child.ready is not None and child.ready.done():
            child.ready = asyncio.get_running_loop().create_future()  # bodies wait for the restart meanwhile
        code = None
        if process is not None:
            if process.poll() is None:
                process.kill()
            code = await asyncio.to_thread(process.wait, 5)
        child.fail(f"decode process {child.index} died (exit {code}) with the body in it; retry")
        if self._closing:
            return
        self.restarts += 1
        log.error("decode process %d (pid %s) died with exit %s; starting it again", child.index,
                  process.pid if process else None, code)
        if time.monotonic() - child.started < RESTART_PAUSE_S:
            await asyncio.sleep(RESTART_PAUSE_S)
        if not self._closing:
            await self._spawn(child)

    def _keep(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # held until done: a task nobody holds may be collected
        task.add_done_callback(self._tasks.discard)


def _load(child: _Child) -> tuple[int, int]:
    return (0 if child.usable() else 1, len(child.pending))
