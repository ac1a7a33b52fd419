"""A full disk, for real (a small tmpfs): the audit log never holds half an entry, the service refuses what
it could not audit (503, which OTLP exporters retry) and serves the decisions in force, and takes spans in
again once there is room — with the chain intact."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spanwarden.collector.otlp_encode import to_request
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import AgentRef, AuditLog, AuditUnwritable, verify
from spanwarden.settings import Settings
from tests.detectors.traffic import T0, merged, normal, runaway

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: a file still open must not leave it mounted


def _fill(disk: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the disk."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        handle.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


def test_a_full_disk_never_leaves_half_an_entry(small_disk: Path) -> None:
    log = AuditLog(small_disk / "audit.jsonl", fsync="always")
    filler = _fill(small_disk, 300)
    with pytest.raises(AuditUnwritable, match="No space left"):
        for i in range(100):
            log.append("finding", AgentRef("a"), "detector:x", "r" * 200, float(i))
    written = log.seq
    filler.unlink()
    log.append("service", AgentRef(), "service", "room again", 1.0)
    log.close()
    result = verify(small_disk / "audit.jsonl")
    assert result.ok and result.entries == written + 1


def test_the_service_refuses_what_it_could_not_audit_and_recovers(small_disk: Path) -> None:
    service = EmbeddedService(Settings(port=0, trust_span_time=True, state_dir=small_disk, audit_fsync="always",
                                       min_free_disk_bytes=256 << 10, admin_token="t"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    headers = {"Content-Type": "application/x-protobuf"}
    records = merged(normal(3, 1.5), runaway(T0 + 1.4 * 3600, 60))
    first, second = records[: len(records) // 2], records[len(records) // 2:]
    try:
        assert requests.post(f"{url}/v1/traces", data=to_request(first).SerializeToString(), headers=headers,
                             timeout=10).status_code == 200
        filler = _fill(small_disk, 64 << 10)
        refused = requests.post(f"{url}/v1/traces", data=to_request(second).SerializeToString(), headers=headers,
                                timeout=10)
        assert refused.status_code == 503 and "bytes free" in refused.json()["message"]
        assert requests.get(f"{url}/healthz", timeout=5).json()["status"] == "disk_full"
        assert requests.get(f"{url}/v1/decisions/agent-a", timeout=5).status_code == 200  # still served
        seen = service.pipeline.records_seen
        filler.unlink()
        assert requests.post(f"{url}/v1/traces", data=to_request(second).SerializeToString(), headers=headers,
                             timeout=10).status_code == 200
        assert service.pipeline.records_seen == seen + len(second)  # nothing of the refused request was taken
        assert service.pipeline.decision("agent-a").action.value == "halt"
    finally:
        service.stop()
    assert verify(small_disk / "audit.jsonl").ok
