"""The gateway's audit writer: each idempotence key appended once, across restarts; junk skipped."""

from __future__ import annotations

from pathlib import Path

from spanwarden.enforcers.audit_log import AgentRef, AuditLog, verify
from spanwarden.streaming.audit_writer import AuditWriter, keys_in_log
from spanwarden.streaming.keyed_audit import KeyedAuditBuffer, encode_entry


def _messages(prefix: str, n: int) -> list[bytes]:
    buffer = KeyedAuditBuffer()
    buffer.start(prefix)
    for i in range(n):
        buffer.append("finding", AgentRef("agent-a", "ana@x", "search", "prod"), "detector:cost_velocity",
                      f"finding {i}", 1_800_000_000.0 + i, ("trace:ab",), "v1", {"score": i})
    return [encode_entry(e) for e in buffer.drain()]


def test_replayed_messages_are_appended_once_even_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first, second = _messages("agent-a/0/7/0", 3), _messages("agent-a/0/8/0", 2)
    log = AuditLog(path)
    writer = AuditWriter(log)
    for message in first + first:
        writer.write(message)
    assert (writer.appended, writer.duplicates) == (3, 3)
    log.close()

    log = AuditLog(path)  # a restarted gateway: the uncommitted tail comes again
    writer = AuditWriter(log, keys_in_log(path))
    for message in first + second:
        writer.write(message)
    log.close()
    assert (writer.appended, writer.duplicates) == (2, 3)
    result = verify(path)
    assert result.ok and result.entries == 5


def test_a_message_that_is_not_an_audit_entry_is_skipped_and_counted(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    writer = AuditWriter(log)
    assert writer.write(b"{}") is None and writer.write(b"\xff") is None
    entry = writer.write(_messages("k", 1)[0])
    assert writer.malformed == 2 and entry is not None and entry.agent.owner == "ana@x"
