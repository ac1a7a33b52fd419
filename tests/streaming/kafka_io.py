"""Test helpers that talk to the real broker with plain aiokafka: produce spans messages, read topics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from spanwarden.streaming.span_splitter import SpansMessage
from spanwarden.streaming.topics import COMMANDS, DECISIONS, SPANS


def produce_spans(bootstrap: str, messages: list[tuple[str, bytes]]) -> list[SpansMessage]:
    """Send (agent, OTLP body) pairs keyed by agent; returns where the broker put each."""

    async def run() -> list[SpansMessage]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 << 20)
        await producer.start()
        try:
            out = []
            for key, value in messages:
                meta = await producer.send_and_wait(SPANS, value, key=key.encode())
                out.append(SpansMessage(meta.partition, meta.offset, value))
            return out
        finally:
            await producer.stop()

    return asyncio.run(run())


def read_topic(bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord]], bool],
               timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """Every message of `topic` from the start, read until `done(messages)` or the timeout (then returned
    as they are, for the assertion to say what was missing)."""

    async def run() -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    metadata_max_age_ms=1000)
        await consumer.start()
        messages: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and not done(messages):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    messages.extend(batch)
            return messages
        finally:
            await consumer.stop()

    return asyncio.run(run())


def assigned_records_partitions(log_path: Path) -> set[int]:
    """The records-topic partitions of the worker's newest assignment, from Faust's log table."""
    tables = re.findall(r"Setting newly assigned partitions.*?for group", log_path.read_text(), re.S)
    if not tables:
        return set()
    match = re.search(r"\| spanwarden\.records\s*\| \{([^}]*)\}", tables[-1])
    out: set[int] = set()
    for part in (match.group(1).split(",") if match else []):
        low, _, high = part.strip().partition("-")
        if low:
            out.update(range(int(low), int(high or low) + 1))
    return out


def ask_for_leases(bootstrap: str, agents: list[str], tag: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Send each agent's worker a lease command (id `<tag>-<agent>`) as the gateway does; the decisions
    message each answered with, by agent (missing when none came within the timeout)."""
    ids = {f"{tag}-{agent}": agent for agent in agents}

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for command_id, agent in ids.items():
                await producer.send_and_wait(COMMANDS, orjson.dumps({
                    "id": command_id, "agent": agent, "type": "lease", "now_s": time.time()}), key=agent.encode())
        finally:
            await producer.stop()

    asyncio.run(send())

    def answers(messages: list[ConsumerRecord]) -> dict[str, Any]:
        docs = (orjson.loads(m.value) for m in messages if m.value)
        return {ids[d["command_id"]]: d for d in docs if d.get("command_id") in ids}

    read = read_topic(bootstrap, DECISIONS, lambda messages: len(answers(messages)) == len(ids), timeout_s)
    return answers(read)
