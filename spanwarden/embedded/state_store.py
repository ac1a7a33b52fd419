"""Pipeline snapshots on local disk. `StateStore` (`state.db`, SQLite in WAL mode) holds one row per agent
and one for the fleet; a snapshot writes only the agents changed since the last one, in one transaction (a
crash mid-write leaves the previous snapshot whole). `Snapshotter` takes the parts off the pipeline a chunk
at a time on the event loop (with orjson) and writes them on a thread, so the loop is never held for long.
Decisions issued after the last snapshot are recovered from the audit log. `state.json` (a whole-state
document, the format before `state.db`) is still read once, to carry its baselines over."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from spanwarden.pipeline_snapshot import agent_part, fleet_part, load_parts

if TYPE_CHECKING:
    from spanwarden.pipeline import Pipeline

log = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """The snapshot exists but cannot be used."""


def save_snapshot(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)  # the previous snapshot stays whole
        raise
    os.replace(tmp, path)


def load_snapshot(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot {path} is unreadable ({exc}); move it aside to start from the audit "
                            "log's decisions with fresh baselines") from exc


FLEET = "fleet"
CHUNK_AGENTS = 200  # agents serialised between two yields to the loop
CHUNK_S = 0.01  # ... or fewer, once a chunk has taken this long


class StateStore:
    """Agent parts and the fleet part as orjson rows. Written from one thread at a time (`write`), read from
    any (each thread its own connection; WAL lets reads go on during a write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # Writes from the loop go to this one thread (one connection, one page cache), not the default pool.
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanwarden-state")
        self.set_aside_as: Path | None = None  # where an unreadable state.db went, when one was found
        try:
            self._create()
        except sqlite3.DatabaseError as exc:
            self.set_aside(str(exc))
            self._create()

    def _create(self) -> None:
        with self._connection() as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("its integrity check failed")
            db.execute("CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, part BLOB NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS fleet (id TEXT PRIMARY KEY, part BLOB NOT NULL)")

    def set_aside(self, why: str) -> None:
        """An unreadable snapshot is moved aside (kept for inspection), never fatal and never overwritten:
        the service starts from the audit log's decisions, and baselines are learned again."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                os.replace(part, aside.with_name(aside.name + suffix))
        self.set_aside_as = aside
        log.error("spanwarden: %s is unreadable (%s); set aside as %s — decisions in force are recovered from "
                  "the audit log, learned baselines start again", self.path, why, aside.name)

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a committed snapshot survives a power cut
        return db

    def write(self, agents: dict[str, bytes | None], fleet: bytes | None = None) -> None:
        """One transaction: changed agents (None: forgotten) and the fleet part; then the WAL is folded
        into the database file, so `state.db` alone is the snapshot."""
        with self._write_lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO agents (id, part) VALUES (?, ?)",
                               [(a, p) for a, p in agents.items() if p is not None])
                db.executemany("DELETE FROM agents WHERE id = ?", [(a,) for a, p in agents.items() if p is None])
                if fleet is not None:
                    db.execute("INSERT OR REPLACE INTO fleet (id, part) VALUES (?, ?)", (FLEET, fleet))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def fleet(self) -> dict[str, Any] | None:
        row = self._connection().execute("SELECT part FROM fleet WHERE id = ?", (FLEET,)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        row = self._connection().execute("SELECT part FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def agents(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for agent_id, part in self._connection().execute("SELECT id, part FROM agents"):
            yield agent_id, orjson.loads(part)

    async def write_off_loop(self, agents: dict[str, bytes | None], fleet: bytes | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(self.writer, self.write, agents, fleet)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def restore(store: StateStore, legacy: Path, pipeline: Pipeline, lazy: bool = False) -> bool:
    """Load the last snapshot into an empty pipeline: `state.db`, or else a `state.json` of the format before
    (every agent then counts as changed, to be written to `state.db` by the next snapshot). `lazy`: agents'
    detectors stay in `state.db` and are paged in when each agent is next needed (see `load_parts`); the
    pipeline needs a pager reading this store before then."""
    try:
        fleet = store.fleet()
        if fleet is not None:
            for _ in store.agents():  # every row readable, before any goes in (one part in memory at a time)
                pass
    except (sqlite3.DatabaseError, orjson.JSONDecodeError) as exc:  # pages the start-up check did not read
        store.set_aside(str(exc))
        store._create()
        return False
    if fleet is not None:
        load_parts(pipeline, fleet, store.agents(), lazy)
        return True
    snapshot = load_snapshot(legacy)
    if snapshot is None:
        return False
    pipeline.load_state(snapshot)
    pipeline.dirty.update(pipeline.detectors, pipeline.ladders, pipeline.agents)
    return True


class Snapshotter:
    """Takes the changed agents' parts off the pipeline and writes them. `run()` is the event-loop version
    (a chunk at a time, the write on a thread); `now()` does it all at once (at shutdown, in tests). Both
    are called on the loop's thread, the only one that touches the pipeline; a refused write raises
    (OSError or sqlite3.Error) and its agents are written next time."""

    def __init__(self, store: StateStore, pipeline: Pipeline,
                 calm: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.pipeline = pipeline
        self.calm = calm  # awaited between chunks: urgent work (a kill command) first
        self.written = 0  # agent rows written, for figures and tests

    def _parts(self, taken: Iterable[str]) -> Iterator[dict[str, bytes | None]]:
        """The parts, a chunk at a time: CHUNK_AGENTS agents, or fewer when they take over CHUNK_S (an agent
        with many records awaiting judgement is a large part)."""
        chunk: dict[str, bytes | None] = {}
        started = time.perf_counter()
        for agent_id in taken:
            part = agent_part(self.pipeline, agent_id)
            if part is not None and part["detectors"] is None and agent_id in self.pipeline.paged_out:
                part["detectors"] = self.pipeline.pager(agent_id) if self.pipeline.pager else None  # as on disk
            chunk[agent_id] = None if part is None else orjson.dumps(part)
            if len(chunk) >= CHUNK_AGENTS or time.perf_counter() - started > CHUNK_S:
                yield chunk
                chunk, started = {}, time.perf_counter()
        yield chunk

    def _take(self) -> set[str]:
        taken, self.pipeline.dirty = self.pipeline.dirty, set()
        return taken

    def now(self) -> None:
        taken = self._take()
        rows: dict[str, bytes | None] = {}
        for chunk in self._parts(taken):
            rows.update(chunk)
        try:
            self.store.write(rows, orjson.dumps(fleet_part(self.pipeline)))
        except (OSError, sqlite3.Error):
            self.pipeline.dirty |= taken  # written next time
            raise
        self.written += len(rows)

    async def run(self) -> None:
        taken = self._take()
        rows: dict[str, bytes | None] = {}
        for chunk in self._parts(taken):
            rows.update(chunk)
            await asyncio.sleep(0)
            if self.calm is not None:
                await self.calm()
        fleet = orjson.dumps(fleet_part(self.pipeline))
        try:
            await self.store.write_off_loop(rows, fleet)
        except (OSError, sqlite3.Error):
            self.pipeline.dirty |= taken  # on the loop: written next time
            raise
        self.written += len(rows)
