"""The audit chain: every tamper case is caught and named; a broken log is never appended to; secrets
are redacted before anything is written."""

from __future__ import annotations

import json

import pytest

from spanwarden.enforcers.audit_log import AgentRef, AuditChainBroken, AuditLog, verify

AGENT = AgentRef("billing-bot", "alice@example.com", "finance", "prod", "2.1.0")


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync="never")
    for i in range(5):
        log.append("finding", AGENT, "detector:cost_velocity", f"reason {i}", 100.0 + i, (f"t/{i}",), "p1",
                   {"score": i})
    log.close()
    return path


def lines(path):
    return path.read_text().splitlines(keepends=True)


def test_intact_log_verifies_and_names_who(log_path):
    result = verify(log_path)
    assert result.ok and result.entries == 5 and result.by_kind == {"finding": 5}
    first = json.loads(lines(log_path)[0])
    assert first["agent"]["owner"] == "alice@example.com" and first["actor"] == "detector:cost_velocity"


def test_reopening_continues_the_chain(log_path):
    log = AuditLog(log_path, fsync="never")
    entry = log.append("command", AGENT, "human:bob", "kill", 200.0)
    log.close()
    assert entry.seq == 6 and verify(log_path).ok


def _rewrite(path, new_lines):
    path.write_text("".join(new_lines))


@pytest.mark.parametrize("tamper, bad_seq, words", [
    (lambda ls: ls[:2] + [ls[2].replace("reason 2", "reason X")] + ls[3:], 3, "altered"),
    (lambda ls: ls[:2] + ls[3:], 4, "missing"),
    (lambda ls: ls[:2] + [ls[1]] + ls[2:], 2, "duplicated"),
    (lambda ls: [ls[0], ls[2], ls[1]] + ls[3:], 3, "missing or reordered"),
    (lambda ls: ls[:3] + ["{garbage\n"] + ls[3:], None, "not a readable audit entry"),
])
def test_every_tamper_is_named(log_path, tamper, bad_seq, words):
    _rewrite(log_path, tamper(lines(log_path)))
    result = verify(log_path)
    assert not result.ok and result.first_bad_seq == bad_seq and words in result.message


def test_rehashed_forgery_fails_with_an_hmac_key(tmp_path):
    path = tmp_path / "signed.jsonl"
    log = AuditLog(path, key=b"k1", fsync="never")
    log.append("decision", AGENT, "policy:x", "halt", 1.0)
    log.close()
    assert verify(path, b"k1").ok
    assert not verify(path, b"other").ok and not verify(path).ok


def test_refuses_to_append_after_a_broken_chain(log_path):
    _rewrite(log_path, lines(log_path)[:1] + lines(log_path)[2:])
    with pytest.raises(AuditChainBroken, match="refusing to append"):
        AuditLog(log_path)


def test_secrets_are_redacted_before_writing(tmp_path):
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, fsync="never")
    log.append("finding", AGENT, "detector:x", "called with Authorization: Bearer abcdef0123456789xyz", 1.0,
               data={"args": "api_key=sk-live-1234567890abcdefghij", "nested": ["AKIAABCDEFGHIJKLMNOP"]})
    log.close()
    text = path.read_text()
    assert "abcdef0123456789xyz" not in text and "sk-live" not in text and "AKIAABCDEFGHIJKLMNOP" not in text
    assert text.count("[REDACTED]") == 3 and verify(path).ok


def test_removing_the_newest_entries_is_caught_by_the_head(log_path):
    _rewrite(log_path, lines(log_path)[:3])
    result = verify(log_path)
    assert not result.ok and "entries 4..5 were removed (truncated)" in result.message
    assert result.first_bad_seq == 4


def test_deleting_the_whole_log_is_caught_by_the_head_and_never_appended_past(log_path):
    import subprocess
    import sys

    log_path.unlink()
    result = verify(log_path)
    assert not result.ok and "entries 1..5 were removed" in result.message and result.first_bad_seq == 1
    with pytest.raises(AuditChainBroken, match="were removed"):
        AuditLog(log_path, fsync="never")  # a fresh chain would overwrite the head: the evidence of the removal
    shown = subprocess.run([sys.executable, "-m", "spanwarden.cli", "audit", "verify", str(log_path)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 1 and shown.stdout.startswith("TAMPERED:"), shown


def test_a_forged_head_is_caught(log_path):
    head = log_path.with_name(log_path.name + ".head")
    doc = json.loads(head.read_text())
    head.write_text(json.dumps({**doc, "seq": 3}))
    assert "altered" in verify(log_path).message


def test_without_a_head_the_verdict_says_what_it_cannot_rule_out(log_path):
    log_path.with_name(log_path.name + ".head").unlink()
    result = verify(log_path)
    assert result.ok and "cannot be ruled out" in result.message


def test_rotation_keeps_one_chain_across_segments(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync="never", rotate_bytes=5000)
    for i in range(60):
        log.append("finding", AGENT, "detector:x", f"reason {i} " + "x" * 100, float(i))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "audit.jsonl.000001" in files and "audit.jsonl.000002" in files
    result = verify(path)
    assert result.ok and result.entries == 60
    reopened = AuditLog(path, fsync="never", rotate_bytes=5000)
    assert reopened.append("command", AGENT, "human:bob", "after", 61.0).seq == 61
    reopened.close()
    (tmp_path / "audit.jsonl.000002").unlink()  # a whole segment removed
    broken = verify(path)
    assert not broken.ok and "missing" in broken.message and broken.first_bad_location.startswith("audit.jsonl")


def _three_entries(path):
    log = AuditLog(path, fsync="never")
    for i in range(3):
        log.append("finding", AgentRef("a"), "detector:x", f"r{i}", float(i))
    log.close()


def test_a_torn_final_write_is_set_aside_and_the_chain_goes_on(tmp_path):
    path = tmp_path / "audit.jsonl"
    _three_entries(path)
    with open(path, "ab") as handle:  # a crash mid-append: half an entry, no newline
        handle.write(b'{"seq": 4, "kind": "decis')
    reopened = AuditLog(path, fsync="never")
    assert reopened.torn_tail is not None and reopened.torn_tail.read_bytes() == b'{"seq": 4, "kind": "decis'
    reopened.append("service", AgentRef(), "service", "started", 9.0)
    reopened.close()
    result = verify(path)
    assert result.ok and result.entries == 4


def test_cutting_into_an_acknowledged_entry_is_still_caught(tmp_path):
    path = tmp_path / "audit.jsonl"
    _three_entries(path)
    path.write_bytes(path.read_bytes()[:-20])  # the last entry, acknowledged, loses its end
    with pytest.raises(AuditChainBroken, match="removed"):
        AuditLog(path, fsync="never")
