"""The gateway's side of the activity topic (`activity_rollup.py`): each worker's rollups appended to the
gateway's activity journal (`STATE_DIR/activity`, the files `serve` keeps, read by the web console, the
incident report and the profile) and counted in its per-agent metrics (`GET /metrics/agents`); findings come
from the audit trail the gateway writes.

The journal's lines stand for `n` calls each (one per span on `serve`). The offsets appended so far are kept
in `STATE_DIR/activity-offsets.json`, so a restarted gateway goes on where it stopped instead of appending
the topic's history again (a crash between an append and the save repeats at most that batch)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from spanwarden.activity_journal import ActivityJournal
from spanwarden.dashboards.prometheus import AgentMetrics
from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.audit_log import AuditEntry
from spanwarden.streaming.activity_rollup import lines_of
from spanwarden.streaming.topics import ACTIVITY

log = logging.getLogger(__name__)
FINDING_FIELDS = {f.name for f in fields(Finding)}


class RollupJournal(ActivityJournal):
    """The activity journal written from rollup lines rather than from span records."""

    def append_lines(self, agent_id: str, lines: list[dict[str, Any]]) -> None:
        handle = self._handle(agent_id)
        handle.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        handle.flush()
        if handle.tell() >= self.max_bytes:
            self._rotate(agent_id)


class ActivityFeed:
    def __init__(self, state_dir: Path, metrics: AgentMetrics, max_bytes: int = 16 << 20) -> None:
        self.journal = RollupJournal(state_dir / "activity", max_bytes)
        self.metrics = metrics
        self.offsets_path = state_dir / "activity-offsets.json"
        self.offsets: dict[int, int] = _read_offsets(self.offsets_path)
        self.applied = 0
        self.malformed = 0
        self.last_seen: dict[str, float] = {}  # agent -> newest span time heard of

    def decode(self, key: bytes, value: bytes) -> tuple[str, dict[str, Any], list[dict[str, Any]]] | None:
        try:
            message = orjson.loads(value)
            return key.decode(errors="replace"), message, lines_of(message)
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            self.malformed += 1
            log.error("skipped an activity message for %r: %s", key, exc)
            return None

    def count(self, agent_id: str, message: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        """The per-agent metrics of one message (on the event loop, where they are read)."""
        team, environment = str(message.get("team", "")), str(message.get("environment", ""))
        for line in lines:
            n = int(line.get("n", 1))
            self.metrics.counts(agent_id, team, environment, str(line.get("call", "other")),
                                str(line.get("model", "")), n, float(line.get("usd") or 0.0),
                                n if line.get("error") else 0)
        if lines:
            self.last_seen[agent_id] = max(self.last_seen.get(agent_id, 0.0), float(lines[-1]["t"]))
        self.applied += 1

    def note_finding(self, entry: AuditEntry) -> None:
        """A finding the workers audited, counted for its agent (a listener on the gateway's audit writer)."""
        if entry.kind != "finding":
            return
        try:
            finding = Finding.from_dict({k: v for k, v in entry.data.items() if k in FINDING_FIELDS})
        except (KeyError, TypeError, ValueError):
            return
        self.metrics.finding(finding, entry.agent)

    def _append(self, decoded: list[tuple[str, list[dict[str, Any]]]]) -> None:
        for agent_id, lines in decoded:
            if lines:
                self.journal.append_lines(agent_id, lines)

    async def run(self, bootstrap: str, stopping: asyncio.Event, fetch_max_wait_ms: int = 100) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", metadata_max_age_ms=5000,
                                    fetch_max_wait_ms=fetch_max_wait_ms)
        await consumer.start()
        try:
            await consumer.topics()  # the cluster's metadata, for the topic's partitions
            known = consumer.partitions_for_topic(ACTIVITY) or set()
            partitions = [TopicPartition(ACTIVITY, p) for p in sorted(known)]
            consumer.assign(partitions)
            for tp in partitions:
                if tp.partition in self.offsets:
                    consumer.seek(tp, self.offsets[tp.partition] + 1)
                else:
                    await consumer.seek_to_beginning(tp)
            while not stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                decoded: list[tuple[str, list[dict[str, Any]]]] = []
                for tp, messages in batches.items():
                    for message in messages:
                        found = self.decode(message.key or b"", message.value or b"")
                        if found is not None:
                            self.count(*found)
                            decoded.append((found[0], found[2]))
                    self.offsets[tp.partition] = messages[-1].offset
                if batches:
                    await asyncio.to_thread(self._append_and_save, decoded, dict(self.offsets))
        finally:
            await consumer.stop()
            self.journal.close()

    def _append_and_save(self, decoded: list[tuple[str, list[dict[str, Any]]]], offsets: dict[int, int]) -> None:
        self._append(decoded)
        temporary = self.offsets_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({str(p): o for p, o in offsets.items()}))
        temporary.replace(self.offsets_path)


def _read_offsets(path: Path) -> dict[int, int]:
    try:
        return {int(p): int(o) for p, o in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}
    except (ValueError, TypeError, AttributeError) as exc:
        log.error("%s is unreadable (%s); the activity topic is read from its beginning", path, exc)
        return {}
