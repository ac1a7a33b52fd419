"""A real Kafka-protocol broker (Tansu) per test, started and stopped by the test itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanwarden.streaming.local_stack import LocalBroker
from spanwarden.streaming.topic_admin import ensure_topics

PARTITIONS = 4


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(log_dir=tmp_path) as running:
        asyncio.run(ensure_topics(running.bootstrap, PARTITIONS))
        yield running
