"""The audit log's per-agent index: an agent's entries read through it are exactly those a scan of the whole
log finds, across rotated segments; it is reused when it matches the log, rebuilt when it does not, and
never used when it is behind the head file (the log is read then)."""

from __future__ import annotations

from pathlib import Path

from spanwarden.enforcers.audit_index import agent_lines, index_path
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry, AuditLog, read_entries, segments
from spanwarden.enforcers.audit_query import entries


def _write(log: AuditLog, n: int, start: int = 0) -> None:
    with log.deferred():
        for i in range(start, start + n):
            log.append("finding" if i % 3 else "decision", AgentRef(f"agent-{i % 7}"), "detector:x", f"r{i}",
                       float(i), data={"i": i})
    log.wait()


def _scan(path: Path, agent: str) -> list[AuditEntry]:
    return [e for _, e in read_entries(path) if isinstance(e, AuditEntry) and e.agent.id == agent]


def _indexed(path: Path, agent: str, kinds: tuple[str, ...] = ()) -> list[AuditEntry] | None:
    lines = agent_lines(path, agent, kinds)
    return None if lines is None else [AuditEntry.from_json(line.decode()) for line in lines]


def test_an_agents_entries_through_the_index_are_those_a_scan_finds(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync="never", rotate_bytes=8192)
    for k in range(10):  # several groups: the log rotates between groups, however the writer batches them
        _write(log, 30, start=30 * k)
    assert len(segments(path)) > 2  # rotated while indexed
    for agent in ("agent-0", "agent-3", "nobody"):
        assert _indexed(path, agent) == _scan(path, agent)
    decisions = _indexed(path, "agent-1", ("decision",))
    assert decisions and decisions == [e for e in _scan(path, "agent-1") if e.kind == "decision"]
    assert list(entries(path, agent="agent-2")) == _scan(path, "agent-2")
    log.close()


def test_reused_when_it_matches_rebuilt_when_it_does_not(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync="never", rotate_bytes=8192)
    _write(log, 100)
    log.close()
    index_path(path).unlink()
    assert _indexed(path, "agent-4") is None  # no index: the reader scans
    log = AuditLog(path, fsync="never", rotate_bytes=8192)  # opening rebuilds it
    assert _indexed(path, "agent-4") == _scan(path, "agent-4")
    _write(log, 100, start=100)
    assert _indexed(path, "agent-4") == _scan(path, "agent-4")
    log.close()


def test_an_index_behind_the_head_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync="never")
    _write(log, 20)
    log.index = None  # from here on the index is not written: it falls behind the log
    _write(log, 5, start=20)
    assert _indexed(path, "agent-0") is None
    assert list(entries(path, agent="agent-0")) == _scan(path, "agent-0")
    log.close()
