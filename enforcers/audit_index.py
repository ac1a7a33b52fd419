"""A per-agent index of the audit log: for each entry, its agent, kind and place (segment and byte offset),
in `audit.jsonl.idx` (SQLite) beside the log. The log's writer thread adds each group's rows once the group
is on disk, so every acknowledged entry is indexed; readers (profile, incident report, the console, audit
export for one agent) seek straight to an agent's entries instead of reading the whole log.

The index names the chain's newest entry it holds (seq and hash); a reader uses it only while that is the
entry the log's head file records, and otherwise reads the log itself. Opening the log rebuilds an index
that does not match it (a first start, a crash between the log and the index, a chain set aside)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

Row = tuple[int, str, str, int, int]  # seq, agent, kind, segment, offset


def index_path(log: Path) -> Path:
    return log.with_name(log.name + ".idx")


def segment_file(log: Path, number: int) -> Path:
    """Segment `number`: rotated as `<log>.<number:06d>`, or still the live file."""
    rotated = log.with_name(f"{log.name}.{number:06d}")
    return rotated if rotated.exists() else log


class AuditIndex:
    def __init__(self, log: Path) -> None:
        self.log = Path(log)
        self.db = sqlite3.connect(index_path(self.log), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # rebuilt from the log if a crash leaves it behind
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, agent TEXT NOT NULL, "
                        "kind TEXT NOT NULL, segment INTEGER NOT NULL, offset INTEGER NOT NULL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS by_agent ON entries (agent, seq)")
        self.db.execute("CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER, "
                        "hash TEXT)")

    def newest(self) -> tuple[int, str] | None:
        row = self.db.execute("SELECT seq, hash FROM head WHERE id = 0").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def add(self, rows: Iterable[Row], last_seq: int, last_hash: str) -> None:
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows)
            self.db.execute("INSERT OR REPLACE INTO head VALUES (0, ?, ?)", (last_seq, last_hash))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def rebuild(self, segments: list[Path]) -> None:
        """Index the log afresh from its files (oldest first; the live file last)."""
        self.db.execute("DELETE FROM entries")
        self.db.execute("DELETE FROM head")
        rows: list[Row] = []
        last: tuple[int, str] | None = None
        rotated = [int(p.name[len(self.log.name) + 1:]) for p in segments if p != self.log]
        for path in segments:
            number = int(path.name[len(self.log.name) + 1:]) if path != self.log else max(rotated, default=0) + 1
            offset = 0
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        doc = json.loads(line)
                        rows.append((int(doc["seq"]), str(doc["agent"]["id"]), str(doc["kind"]), number, offset))
                        last = (int(doc["seq"]), str(doc["hash"]))
                    except (ValueError, KeyError, TypeError):
                        pass  # verify names the bad line; the index just leaves it out
                    offset += len(line)
            if len(rows) > 50_000:
                self.add(rows, *(last or (0, "")))
                rows = []
        if last is not None:
            self.add(rows, *last)

    def places(self, agent: str, kinds: tuple[str, ...] = ()) -> list[tuple[int, int]]:
        """(segment, offset) of the agent's entries, oldest first."""
        if kinds:
            marks = ",".join("?" * len(kinds))
            query = f"SELECT segment, offset FROM entries WHERE agent = ? AND kind IN ({marks}) ORDER BY seq"
            return self.db.execute(query, (agent, *kinds)).fetchall()
        return self.db.execute("SELECT segment, offset FROM entries WHERE agent = ? ORDER BY seq",
                               (agent,)).fetchall()

    def close(self) -> None:
        self.db.close()


def agent_lines(log: Path, agent: str, kinds: tuple[str, ...] = ()) -> Iterator[bytes] | None:
    """The agent's entries as raw lines through the index, or None when there is no index that matches the
    log's head file (read the log then)."""
    log = Path(log)
    head = log.with_name(log.name + ".head")
    if not index_path(log).exists() or not head.exists():
        return None
    try:
        recorded = json.loads(head.read_text())
        index = AuditIndex(log)
    except (OSError, ValueError, sqlite3.Error):
        return None
    try:
        if index.newest() != (int(recorded["seq"]), str(recorded["hash"])):
            return None
        places = index.places(agent, kinds)
    except (sqlite3.Error, KeyError, TypeError, ValueError):
        return None
    finally:
        index.close()
    return _read(log, places)


def _read(log: Path, places: list[tuple[int, int]]) -> Iterator[bytes]:
    handles: dict[int, BinaryIO] = {}
    try:
        for segment, offset in places:
            handle = handles.get(segment)
            if handle is None:
                handle = handles[segment] = open(segment_file(log, segment), "rb")  # noqa: SIM115 - closed below
            handle.seek(offset)
            yield handle.readline()
    finally:
        for handle in handles.values():
            handle.close()
