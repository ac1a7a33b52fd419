"""The policy in force on the Kafka runtime: one compacted topic, one key, the newest policy's YAML.

The gateway validates a policy before it publishes it (an invalid one is refused there, with the line at
fault: `Policy.from_yaml`'s error), so every worker reads the same text and puts the same version in force;
each decision the policy makes names that version (`decided_by` is `policy:<rule>@<version>`). A worker
reads the topic to its end before it takes any input, then follows it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from spanwarden.enforcers.policy import Policy, PolicyError
from spanwarden.streaming.topics import POLICY

log = logging.getLogger(__name__)
KEY = b"policy"


def encode(text: str, actor: str) -> bytes:
    return orjson.dumps({"yaml": text, "actor": actor})


def decode(value: bytes) -> tuple[Policy, str]:
    """The policy and who put it in force; PolicyError for a message that is not a valid policy."""
    try:
        doc: dict[str, Any] = orjson.loads(value)
        text, actor = str(doc["yaml"]), str(doc["actor"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise PolicyError(f"policy topic: not a policy message ({exc})") from exc
    return Policy.from_yaml(text, "policy topic"), actor


async def publish(producer: AIOKafkaProducer, text: str, actor: str) -> Policy:
    """Validate `text` and put it on the topic (PolicyError, naming the line, when it is not valid)."""
    policy = Policy.from_yaml(text, "policy")
    await producer.send_and_wait(POLICY, encode(text, actor), key=KEY)
    return policy


def read_file(path: Path | None) -> tuple[str, Policy]:
    """The policy file's text (the shipped default's when None) and the policy it holds (PolicyError,
    naming the line at fault, when it is not valid)."""
    if path is None:
        text = resources.files("spanwarden.enforcers").joinpath("default_policy.yaml").read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    return text, Policy.from_yaml(text, str(path or "default_policy.yaml"))


async def publish_if_changed(producer: AIOKafkaProducer, bootstrap: str, text: str, actor: str) -> bool:
    """At the gateway's start: put its policy on the topic unless the topic's newest is that policy already
    (the workers then take it, as `serve` takes its file at start). Whether it published."""
    found = await newest(bootstrap)
    try:
        if found is not None and decode(found)[0] == Policy.from_yaml(text, "policy"):
            return False
    except PolicyError:  # not a message the gateway wrote: replace it
        pass
    await publish(producer, text, actor)
    return True


async def newest(bootstrap: str, timeout_s: float = 10.0, topic: str = POLICY, key: bytes = KEY) -> bytes | None:
    """The topic's newest policy message (or another one-partition topic's newest under `key`), read to the
    end offsets of now; None when it has none."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        found: bytes | None = None
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} was not read to its end within {timeout_s:g} s")
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    if message.key == key and message.value:
                        found = message.value
        return found
    finally:
        await consumer.stop()


class PolicyFollower:
    """A worker's side: puts each new policy from the topic in force through `apply(policy, actor)`."""

    def __init__(self, current: Callable[[], Policy], apply: Callable[[Policy, str], None]) -> None:
        self.current = current
        self.apply = apply
        self.refused = 0

    def __call__(self, key: bytes, value: bytes) -> None:
        if key != KEY or not value:
            return
        try:
            policy, actor = decode(value)
        except PolicyError as exc:  # the gateway validates; this is a message it did not write
            self.refused += 1
            log.error("skipped a policy message, %s stays in force: %s", self.current().version, exc)
            return
        if policy != self.current():
            self.apply(policy, actor)
            log.info("policy %s in force (from the policy topic, put there by %s)", policy.version, actor)


def read_newest(bootstrap: str, timeout_s: float = 10.0) -> bytes | None:
    """`newest` for code outside an event loop (a worker before it starts)."""
    return asyncio.run(newest(bootstrap, timeout_s))
