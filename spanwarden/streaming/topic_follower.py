"""Read a topic from its beginning and keep following it (no consumer group: every gateway reads it all),
handing each message to a callback — for the compacted topics that hold current state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer


async def follow(bootstrap: str, topic: str, on_message: Callable[[bytes, bytes], None],
                 stopping: asyncio.Event, fetch_max_wait_ms: int = 100) -> None:
    """`on_message(key, value)` for every message until `stopping` is set."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, metadata_max_age_ms=5000,
                                fetch_max_wait_ms=fetch_max_wait_ms)
    await consumer.start()
    try:
        while not stopping.is_set():
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    on_message(message.key or b"", message.value or b"")
    finally:
        await consumer.stop()
