"""The audit log's writer thread: entries appended without waiting are written in groups (fewer fsyncs than
entries), acknowledged only once written, and a group the disk refuses fails every entry queued after it
while the chain goes on from the last entry on disk."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanwarden.enforcers.audit_log import AgentRef, AuditLog, AuditUnwritable, verify


def test_deferred_appends_are_written_in_groups_and_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync="always")
    with log.deferred():
        for i in range(400):
            log.append("finding", AgentRef("a"), "detector:x", f"r{i}", float(i))
    log.wait()
    assert log.writer.entries == 400 and log.writer.groups < 400  # one fsync covered many entries
    log.close()
    result = verify(tmp_path / "audit.jsonl")
    assert result.ok and result.entries == 400


def test_appends_from_many_threads_keep_one_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync="always")

    def write(n: int) -> None:
        for i in range(50):
            log.append("finding", AgentRef(f"a{n}"), "detector:x", f"r{i}", float(i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert verify(tmp_path / "audit.jsonl").entries == 300


def test_an_event_loop_awaits_the_acknowledgement(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync="always")

    async def main() -> int:
        with log.deferred():
            log.append("service", AgentRef(), "service", "one", 1.0)
        await asyncio.wait_for(log.durable(), 10)
        return len((tmp_path / "audit.jsonl").read_bytes().splitlines())

    assert asyncio.run(main()) == 1
    log.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_refused_group_fails_its_waiters_and_the_chain_goes_on(small_disk: Path) -> None:
    log = AuditLog(small_disk / "audit.jsonl", fsync="always")
    log.append("service", AgentRef(), "service", "first", 0.0)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        handle.write(b"\0" * max(0, shutil.disk_usage(small_disk).free - 4096))
    with log.deferred():
        for i in range(200):
            log.append("finding", AgentRef("a"), "detector:x", "r" * 200, float(i))
    with pytest.raises(AuditUnwritable, match="No space left"):
        log.wait()
    filler.unlink()
    log.append("service", AgentRef(), "service", "room again", 1.0)
    log.close()
    result = verify(small_disk / "audit.jsonl")
    assert result.ok and 2 <= result.entries < 202 and result.last_seq == log.seq
