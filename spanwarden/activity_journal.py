"""What each agent did, span by span, kept on disk for the incident report ("what did it touch, spend and
break since it went wrong?"): one compact JSON line per span in `STATE_DIR/activity/<agent>.jsonl`.

Bounded: a file past `max_bytes` becomes `<agent>.jsonl.1` (the previous one is dropped), so each agent
keeps between one and two files' worth of recent history. Only the most recently used files stay open.

A line's time `t` is the service's, as the pipeline and status take it: given the time bounds, the span's
end clamped to [received − max lateness, received + max skew] (`spanwarden/event_time.py`), so a span
dated a month back or hours ahead is kept at about when it arrived. Who the agent is (owner, team,
environment, version, where its id came from) is kept beside it in `<agent>.who.json`, rewritten when it
changes."""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from spanwarden.collector.span_record import SpanRecord
from spanwarden.event_time import TimeBounds, clamp

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
WHO = ("owner", "team", "environment", "version", "source")  # source: where the agent's id came from


def file_name(agent_id: str) -> str:
    """A file name for any agent id (ids come from spans): readable where possible, never a path."""
    safe = _SAFE.sub("_", agent_id)[:80]
    return f"{safe}-{hashlib.blake2b(agent_id.encode(), digest_size=4).hexdigest()}.jsonl"


def who_name(agent_id: str) -> str:
    """The file beside the agent's journal that says who the agent is."""
    return file_name(agent_id).removesuffix(".jsonl") + ".who.json"


def entry(record: SpanRecord, bounds: TimeBounds | None = None) -> dict[str, Any]:
    """The journal line of a span; with `bounds`, at the service's (clamped) time."""
    t = clamp(record, bounds).time_s if bounds is not None else record.time_s
    line = {"t": t, "trace": record.trace_id, "span": record.span_id, "resource": record.resource,
            "tool": record.tool_name, "model": record.model, "usd": record.cost_usd, "rows": record.rows,
            "error": record.error_type if record.is_error else ""}
    if record.is_write:  # what the incident report's list of writes needs (only on writes: lines stay small)
        line.update(effect=record.effect, op=record.effect_summary, approval=record.approval)
    return line


class ActivityJournal:
    def __init__(self, directory: Path, max_bytes: int = 16 << 20, open_files: int = 128,
                 bounds: TimeBounds | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.open_files = open_files
        self.bounds = bounds  # None: the spans' own times are trusted
        self._files: OrderedDict[str, IO[bytes]] = OrderedDict()
        self._who: dict[str, tuple[str, ...]] = {}  # agent -> who its who-file says it is
        directory.mkdir(parents=True, exist_ok=True)

    def append(self, records: list[SpanRecord]) -> None:
        by_agent: dict[str, list[bytes]] = {}
        latest: dict[str, tuple[str, ...]] = {}
        for record in records:
            by_agent.setdefault(record.agent_id, []).append(orjson.dumps(entry(record, self.bounds)) + b"\n")
            said: tuple[str, ...] = (record.owner, record.team, record.environment, record.agent_version,
                                     record.agent_source)
            if any(said):
                latest[record.agent_id] = said
        for agent_id, who in latest.items():
            if self._who.get(agent_id) != who:  # (unknown here: written again once after a restart)
                self._write_who(agent_id, who)
        for agent_id, lines in by_agent.items():
            handle = self._handle(agent_id)
            handle.write(b"".join(lines))
            handle.flush()
            if handle.tell() >= self.max_bytes:
                self._rotate(agent_id)

    def _handle(self, agent_id: str) -> IO[bytes]:
        handle = self._files.get(agent_id)
        if handle is not None:
            self._files.move_to_end(agent_id)
            return handle
        handle = open(self.directory / file_name(agent_id), "ab")  # noqa: SIM115 - kept open, LRU-closed
        self._files[agent_id] = handle
        while len(self._files) > self.open_files:
            self._files.popitem(last=False)[1].close()
        return handle

    def who(self, agent_id: str) -> dict[str, str]:
        """Who the agent's spans last said it is (`read_who`), from this journal's memory when it wrote it."""
        known = self._who.get(agent_id)
        if known is None:
            said = read_who(self.directory, agent_id)
            known = self._who[agent_id] = tuple(said.get(k, "") for k in WHO) if said else ()
        return dict(zip(WHO, known, strict=True)) if known else {}

    def _write_who(self, agent_id: str, who: tuple[str, ...]) -> None:
        path = self.directory / who_name(agent_id)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(dict(zip(WHO, who, strict=True))))
        os.replace(tmp, path)
        if len(self._who) >= 100_000:  # bounded: an agent forgotten here only has its file written again
            self._who.clear()
        self._who[agent_id] = who

    def _rotate(self, agent_id: str) -> None:
        self._files.pop(agent_id).close()
        path = self.directory / file_name(agent_id)
        path.replace(path.with_name(path.name + ".1"))

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def read_activity(directory: Path, agent_id: str, since_s: float = float("-inf")) -> Iterator[dict[str, Any]]:
    """The agent's spans from `since_s` on, oldest first (a torn or unreadable line is skipped)."""
    path = directory / file_name(agent_id)
    for part in (path.with_name(path.name + ".1"), path):
        if not part.exists():
            continue
        with open(part, "rb") as handle:
            for line in handle:
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if item.get("t", float("-inf")) >= since_s:
                    yield item


def read_who(directory: Path, agent_id: str) -> dict[str, str]:
    """Who the agent's spans last said it is (`WHO`: owner, team, environment, version, source of the id);
    {} when never said."""
    try:
        found = orjson.loads((directory / who_name(agent_id)).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {k: str(v) for k, v in found.items()} if isinstance(found, dict) else {}
