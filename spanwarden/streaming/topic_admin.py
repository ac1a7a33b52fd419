"""Create spanwarden's topics when they are missing, so whichever starts first (gateway or worker) finds
them with the right partition count and the decisions topic compacted."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from spanwarden.streaming.topics import ALL, COMPACTED, RETENTION_MS, SINGLE_PARTITION

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap: str, partitions: int, replication_factor: int = 1) -> list[str]:
    """Create the missing topics; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, 1 if name in SINGLE_PARTITION else partitions, replication_factor,
                           topic_configs=_configs(name)) for name in ALL if name not in existing]
        created = []
        for topic in wanted:  # one at a time: another process may be creating the same ones
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics %s with %d partitions", created, partitions)
        return created
    finally:
        await admin.close()


def _configs(name: str) -> dict[str, str] | None:
    if name in COMPACTED:
        return {"cleanup.policy": "compact"}
    if name in RETENTION_MS:
        return {"retention.ms": str(RETENTION_MS[name])}
    return None
