"""The broker watch says in one line that the broker is away, mutes the clients' retry errors meanwhile, and
says in one line that it is back once a real broker answers again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from spanwarden.streaming.broker_watch import BrokerWatch
from spanwarden.streaming.local_stack import LocalBroker, free_port


def test_one_line_away_one_line_back_and_the_clients_muted_between(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    watch = BrokerWatch(f"127.0.0.1:{port}", "worker 1")
    caplog.set_level(logging.INFO, logger="spanwarden.streaming.broker_watch")
    asyncio.run(watch.step())
    asyncio.run(watch.step())  # still away: no second line
    assert logging.getLogger("aiokafka").getEffectiveLevel() == logging.CRITICAL
    with LocalBroker(port=port, log_dir=tmp_path):
        asyncio.run(watch.step())
        asyncio.run(watch.step())
    lines = [r.getMessage() for r in caplog.records if r.name == "spanwarden.streaming.broker_watch"]
    assert len(lines) == 2 and "is away" in lines[0] and "is back after" in lines[1], lines
    assert all(f"127.0.0.1:{port}" in line and line.startswith("worker 1: ") for line in lines)
    assert logging.getLogger("aiokafka").level == logging.NOTSET  # restored
    assert watch.outages == 1
