"""The audit topic appended to the hash-chained log, each idempotence key once.

The gateway is the chain's single writer. It commits its consumer offsets only after the entries are in
the log, so a crash replays the uncommitted tail; the keys of the newest entries (read back from the log at
start) let it skip what it had already appended. Entries with no key (none are sent without one) are
appended as they come."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from spanwarden.audit_sink import AuditSink
from spanwarden.enforcers.audit_log import AuditEntry, read_entries
from spanwarden.streaming.keyed_audit import KEY_FIELD, decode_entry
from spanwarden.streaming.topics import AUDIT

log = logging.getLogger(__name__)
RECENT_KEYS = 200_000  # far more than one commit interval of entries


class AuditWriter:
    def __init__(self, audit: AuditSink, recent_keys: list[str] | None = None,
                 remember: int = RECENT_KEYS) -> None:
        self.audit = audit
        self.remember = remember
        self.recent: OrderedDict[str, None] = OrderedDict((k, None) for k in (recent_keys or [])[-remember:])
        self.appended = 0
        self.duplicates = 0
        self.malformed = 0

    def write(self, value: bytes) -> AuditEntry | None:
        """Append one audit message unless its key was appended already."""
        try:
            fields: dict[str, Any] = decode_entry(value)
        except ValueError as exc:
            self.malformed += 1
            log.error("skipped an audit message: %s", exc)
            return None
        key = str(fields["data"].get(KEY_FIELD, ""))
        if key and key in self.recent:
            self.duplicates += 1
            return None
        entry = self.audit.append(**fields)
        if key:
            self.recent[key] = None
            if len(self.recent) > self.remember:
                self.recent.popitem(last=False)
        self.appended += 1
        return entry

    async def run(self, bootstrap: str, group_id: str, stopping: asyncio.Event,
                  fetch_max_wait_ms: int = 100) -> None:
        consumer = AIOKafkaConsumer(AUDIT, bootstrap_servers=bootstrap, group_id=group_id,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    metadata_max_age_ms=5000, fetch_max_wait_ms=fetch_max_wait_ms)
        await consumer.start()
        try:
            while not stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for messages in batches.values():
                    for message in messages:
                        self.write(message.value or b"")
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()


def keys_in_log(path: Path, newest: int = RECENT_KEYS) -> list[str]:
    """The idempotence keys of the newest entries of the log's current segment."""
    keys: list[str] = []
    if not path.exists():
        return keys
    for _, entry in read_entries(path):
        if isinstance(entry, AuditEntry) and entry.data.get(KEY_FIELD):
            keys.append(str(entry.data[KEY_FIELD]))
    return keys[-newest:]
