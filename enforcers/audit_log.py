"""The tamper-evident audit log: append-only JSON lines, each entry chained to the one before by a hash
(an HMAC when a key is configured), so `verify` proves nothing was altered, removed, inserted or reordered.

A chain alone cannot show that its last entries were cut off, so a small head file beside the log
(`audit.jsonl.head`) records the sequence number and hash of the newest entry, rewritten atomically after
every append; `verify` checks the log still reaches it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spanwarden.enforcers.audit_index import AuditIndex, index_path
from spanwarden.enforcers.audit_writer import GroupWriter, Queued
from spanwarden.enforcers.redact import Redactor

log = logging.getLogger(__name__)
GENESIS = "0" * 64
KINDS = ("finding", "decision", "command", "approval", "config_change", "service")


class AuditError(RuntimeError):
    """The audit log cannot be appended to safely."""


class AuditUnwritable(AuditError):
    """The log cannot be written (disk full, I/O error); nothing half-written was left in it."""


class AuditChainBroken(AuditError):
    """The existing log does not verify: appending would paper over tampering or corruption."""


@dataclass(frozen=True, slots=True)
class AgentRef:
    """The agent an entry is about, with who is responsible for it."""

    id: str = ""
    owner: str = ""
    team: str = ""
    environment: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    time_s: float
    kind: str
    agent: AgentRef
    actor: str  # "policy:<rule>@<version>", "detector:<name>", "human:<name>", "service"
    reason: str
    evidence: tuple[str, ...]
    policy_version: str
    data: dict[str, Any]
    prev_hash: str
    hash: str = ""

    def body(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("hash")
        out["evidence"] = list(self.evidence)
        return out

    def to_json(self) -> str:
        out = self.body()
        out["hash"] = self.hash
        return json.dumps(out, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> AuditEntry:
        doc = json.loads(line)
        doc["agent"] = AgentRef(**doc["agent"])
        doc["evidence"] = tuple(doc["evidence"])
        return cls(**doc)


def entry_hash(body: dict[str, Any], key: bytes | None) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    if key:
        return hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return hashlib.sha256(canonical).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    message: str
    first_bad_seq: int | None = None
    first_bad_location: str | None = None  # "file:line"
    last_hash: str = GENESIS
    last_seq: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def segments(path: Path) -> list[Path]:
    """The log's files, oldest first: rotated segments `audit.jsonl.000001`, ..., then `audit.jsonl`."""
    rotated = [p for p in path.parent.glob(path.name + ".*") if p.name[len(path.name) + 1:].isdigit()]
    return sorted(rotated, key=lambda p: int(p.name[len(path.name) + 1:])) + ([path] if path.exists() else [])


def read_entries(path: Path) -> Iterator[tuple[str, AuditEntry | Exception]]:
    """("file:line", entry or the error that made the line unreadable) for each line of every segment."""
    for segment in segments(Path(path)):
        with open(segment, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                where = f"{segment.name}:{number}"
                try:
                    yield where, AuditEntry.from_json(line)
                except (ValueError, TypeError, KeyError) as exc:
                    yield where, exc


def verify(path: Path, key: bytes | None = None) -> VerifyResult:
    """Check every entry's hash and its link to the one before, across rotated segments; name the first
    bad entry."""
    path = Path(path)
    result = VerifyResult(ok=True, entries=0, message="")
    if not segments(path):
        if not head_path(path).exists():
            result.message = f"{path}: no audit log (nothing to verify)"
            return result
        # The head says entries were written: a log gone with its head still there was deleted.
        result.message = f"{path}: no audit log"
        return _check_head(result, path, key)
    prev, expected_seq = GENESIS, 1
    for where, entry in read_entries(path):
        if isinstance(entry, Exception):
            return _bad(result, None, where, f"{where} is not a readable audit entry: {entry}")
        if entry.seq != expected_seq:
            what = "missing or reordered" if entry.seq > expected_seq else "duplicated or reordered"
            return _bad(result, entry.seq, where, f"{where}: seq {entry.seq} where {expected_seq} "
                        f"was expected (entries {what})")
        if entry.prev_hash != prev:
            return _bad(result, entry.seq, where, f"entry {entry.seq} ({where}) does not chain to the "
                        "entry before it (an entry was removed, inserted or reordered)")
        if not hmac.compare_digest(entry_hash(entry.body(), key).encode(), str(entry.hash).encode()):
            return _bad(result, entry.seq, where, f"entry {entry.seq} ({where}) was altered: its hash "
                        "does not match its content" + ("" if key else " (or it was signed with an HMAC key)"))
        prev, expected_seq = entry.hash, expected_seq + 1
        result.entries += 1
        result.by_kind[entry.kind] = result.by_kind.get(entry.kind, 0) + 1
    result.last_hash, result.last_seq = prev, expected_seq - 1
    result.message = f"{path}: {result.entries} entries verified, chain intact"
    return _check_head(result, path, key)


def head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _head_mac(seq: int, digest: str, key: bytes | None) -> str:
    return entry_hash({"head_seq": seq, "head_hash": digest}, key)


def _check_head(result: VerifyResult, path: Path, key: bytes | None) -> VerifyResult:
    head = head_path(path)
    if not head.exists():
        if result.entries:
            result.message += " (no head file: removal of the newest entries cannot be ruled out)"
        return result
    try:
        doc = json.loads(head.read_text())
        seq, digest, mac = int(doc["seq"]), str(doc["hash"]), str(doc["mac"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _bad(result, None, head.name, f"{head} is unreadable: {exc}")
    if not hmac.compare_digest(_head_mac(seq, digest, key).encode(), str(mac).encode()):
        return _bad(result, None, head.name, f"{head} was altered (its seal does not match)")
    last = result.last_seq
    if seq > last:
        return _bad(result, last + 1, head.name, f"the log ends at entry {last} but its head records entry "
                    f"{seq}: entries {last + 1}..{seq} were removed (truncated)")
    if seq == last and digest != result.last_hash:
        return _bad(result, seq, head.name, f"entry {seq} is not the entry the head recorded (it was replaced)")
    if seq < last - 1:  # one entry past the head is a crash between the append and the head update
        return _bad(result, seq + 1, head.name, f"entries {seq + 1}..{last} were added after the head was "
                    "last written (not by spanwarden)")
    return result


def _bad(result: VerifyResult, seq: int | None, where: str, message: str) -> VerifyResult:
    result.ok, result.first_bad_seq, result.first_bad_location, result.message = False, seq, where, message
    return result


class HeadUnwritable(AuditUnwritable):
    """The entries are on disk but the head file could not be rewritten (a tolerated state, still an error)."""


class AuditLog:
    """Appends entries to a JSON-lines file. Opening verifies the existing chain and refuses to append to a
    broken one. `fsync`: "always" (each entry is on disk when `append` returns), or "never" (the OS decides;
    faster, may lose the last entries on power loss).

    Entries are written by a writer thread in groups (`spanwarden.enforcers.audit_writer`): `append` seals
    the entry and waits for its group to be written; inside `deferred()` (on this thread) it returns at once
    and the caller waits for `last_ticket` itself (`wait`, or `durable` from an event loop) before
    acknowledging anything that depends on the entries."""

    def __init__(self, path: Path, key: bytes | None = None, fsync: str = "always",
                 redactor: Redactor | None = None, rotate_bytes: int = 64 << 20) -> None:
        if fsync not in ("always", "never"):
            raise ValueError(f"fsync must be 'always' or 'never', not {fsync!r}")
        self.path = Path(path)
        self.key = key
        self.fsync = fsync
        self.redactor = redactor or Redactor()
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()  # sealing: seq and last_hash follow the queued entries
        self._local = threading.local()
        self.torn_tail = _set_aside_torn_tail(self.path)
        existing = verify(self.path, key)
        if not existing.ok:
            raise AuditChainBroken(f"refusing to append to {self.path}: {existing.message}")
        self.last_hash, self.seq = existing.last_hash, existing.last_seq
        self._written = (self.seq, self.last_hash)  # the newest entry on disk (the writer's)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for appends
        self._segment = max((int(p.name[len(self.path.name) + 1:]) for p in segments(self.path)[:-1]),
                            default=0) + 1  # the number the live file gets when it is rotated
        self.index: AuditIndex | None = _open_index(self.path, existing)
        self.writer = GroupWriter(self._write_group, self._roll_back, self._lock, (HeadUnwritable,))

    def append(self, kind: str, agent: AgentRef, actor: str, reason: str, time_s: float,
               evidence: tuple[str, ...] = (), policy_version: str = "",
               data: dict[str, Any] | None = None) -> AuditEntry:
        if kind not in KINDS:
            raise ValueError(f"unknown audit entry kind {kind!r}; one of {KINDS}")
        r = self.redactor
        agent = AgentRef(*(r.text(v) for v in (agent.id, agent.owner, agent.team, agent.environment,
                                               agent.version)))
        actor, reason, evidence = r.text(actor), r.text(reason), tuple(r.text(e) for e in evidence)
        data = r.value(data or {})
        with self._lock:
            entry = AuditEntry(seq=self.seq + 1, time_s=time_s, kind=kind, agent=agent, actor=actor,
                               reason=reason, evidence=evidence, policy_version=policy_version, data=data,
                               prev_hash=self.last_hash)
            sealed = AuditEntry(**{**_fields(entry), "hash": entry_hash(entry.body(), self.key)})
            ticket = self.writer.submit(sealed.seq, sealed.hash, (sealed.to_json() + "\n").encode(),
                                        sealed.agent.id, sealed.kind)
            self.seq, self.last_hash = sealed.seq, sealed.hash
        if not getattr(self._local, "deferred", False):
            self.writer.wait(ticket)
        return sealed

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Appends on this thread return without waiting (wait for `last_ticket` afterwards)."""
        before = getattr(self._local, "deferred", False)
        self._local.deferred = True
        try:
            yield
        finally:
            self._local.deferred = before

    @property
    def deferring(self) -> bool:
        """Inside `deferred()` on this thread."""
        return bool(getattr(self._local, "deferred", False))

    @property
    def last_ticket(self) -> int:
        return self.writer.last_ticket

    def wait(self, ticket: int | None = None) -> None:
        """Block until the entries appended so far (or up to `ticket`) are acknowledged."""
        self.writer.wait(self.writer.last_ticket if ticket is None else ticket)

    def durable(self, ticket: int | None = None) -> asyncio.Future[None]:
        """An event-loop future: the entries appended so far (or up to `ticket`) are acknowledged."""
        return self.writer.future(self.writer.last_ticket if ticket is None else ticket)

    def _write_group(self, group: list[Queued]) -> None:
        """Write a group of whole entries or none: a failed write (disk full) is cut back, so the log never
        holds half an entry the next append would follow; then index it. Runs on the writer thread."""
        lines, (_, last_seq, last_hash, *_) = b"".join(q[3] for q in group), group[-1]
        start = self._file.tell()
        try:
            view = memoryview(lines)
            while view:
                view = view[self._file.write(view) or 0:]
            if self.fsync == "always":
                os.fsync(self._file.fileno())
        except OSError as exc:
            self._file.truncate(start)
            self._file.seek(start)  # truncate leaves the position past the end: the next group starts here
            raise AuditUnwritable(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from exc
        self._written = (last_seq, last_hash)
        self._index(group, start, last_seq, last_hash)
        if self._file.tell() >= self.rotate_bytes:
            self._rotate()
        try:
            self._write_head(last_seq, last_hash)
        except OSError as exc:  # the entries are durable; a head behind them is a tolerated state
            raise HeadUnwritable(f"wrote entry {last_seq} but not {head_path(self.path).name}: "
                                 f"{exc.strerror or exc}") from exc

    def _index(self, group: list[Queued], start: int, last_seq: int, last_hash: str) -> None:
        if self.index is None:
            return
        rows, offset = [], start
        for _, seq, _, line, agent, kind in group:
            rows.append((seq, agent, kind, self._segment, offset))
            offset += len(line)
        try:
            self.index.add(rows, last_seq, last_hash)
        except sqlite3.Error as exc:  # readers go back to reading the log (the index no longer matches it)
            log.error("the audit index %s cannot be written (%s); reads scan the log", index_path(self.path), exc)
            self.index = None

    def _roll_back(self) -> None:
        """A group was refused: the chain goes on from the newest entry on disk (sealing lock held)."""
        self.seq, self.last_hash = self._written

    def _rotate(self) -> None:
        """Close this file as the next numbered segment and go on in a fresh one; the chain just continues
        (the next entry's prev_hash is this one's hash), so `verify` reads the segments as one log."""
        self._file.close()
        numbers = [int(p.name[len(self.path.name) + 1:]) for p in segments(self.path)[:-1]]
        os.replace(self.path, self.path.with_name(f"{self.path.name}.{max(numbers, default=0) + 1:06d}"))
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for appends
        self._segment = max(numbers, default=0) + 2

    def _write_head(self, seq: int, digest: str) -> None:
        head = head_path(self.path)
        tmp = head.with_name(head.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"seq": seq, "hash": digest, "mac": _head_mac(seq, digest, self.key)}, handle)
                if self.fsync == "always":
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, head)

    def close(self) -> None:
        self.writer.close()
        if self.index is not None:
            self.index.close()
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()


def _open_index(path: Path, existing: VerifyResult) -> AuditIndex | None:
    """The log's index, rebuilt unless it ends at the log's newest entry; None if it cannot be had."""
    try:
        index = AuditIndex(path)
        if index.newest() != ((existing.last_seq, existing.last_hash) if existing.entries else None):
            index.rebuild(segments(path))
        return index
    except sqlite3.Error as exc:
        log.error("no audit index for %s (%s); reads scan the log", path, exc)
        return None


def _set_aside_torn_tail(path: Path) -> Path | None:
    """A crash in the middle of an append leaves a last line with no newline: an entry that was never
    acknowledged (`append` returns after the newline is written and synced). Move those bytes to
    `<log>.torn-N` for forensics and cut the log back to its last whole entry. Removing a whole entry is
    still caught by the head file."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        start = max(0, size - (1 << 20))
        handle.seek(start)
        tail = handle.read()
        if tail.endswith(b"\n"):
            return None
        cut = tail.rfind(b"\n")
        if cut < 0 and start > 0:
            return None  # a last line over 1 MiB: leave it for verify to report
        keep = start + cut + 1
        aside = path.with_name(f"{path.name}.torn-{int(time.time())}")
        aside.write_bytes(tail[cut + 1:])
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return aside


def _fields(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in AuditEntry.__slots__}  # type: ignore[attr-defined]
