"""Pipeline snapshots on local disk, written atomically (temp file + rename) so a crash mid-write leaves
the previous snapshot intact; decisions issued after the last snapshot are recovered from the audit log."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from spanwarden.enforcers.audit_log import read_entries
from spanwarden.enforcers.decision import Decision

log = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """The snapshot exists but cannot be used."""


def save_snapshot(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)  # the previous snapshot stays whole
        raise
    os.replace(tmp, path)


def load_snapshot(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot {path} is unreadable ({exc}); move it aside to start from the audit "
                            "log's decisions with fresh baselines") from exc


def decisions_from_audit(path: Path) -> list[Decision]:
    """The newest decision per agent and scope recorded in the audit log, oldest version first."""
    newest: dict[tuple[str, str], Decision] = {}
    if not path.exists():
        return []
    for _, entry in read_entries(path):
        if isinstance(entry, Exception) or entry.kind != "decision":
            continue
        try:
            decision = Decision.from_dict(entry.data)
        except (KeyError, TypeError, ValueError):
            log.warning("audit entry %s holds no readable decision", entry.seq)
            continue
        key = (decision.agent_id, decision.scope)
        held = newest.get(key)
        if held is None or decision.version > held.version:
            newest[key] = decision
    return sorted(newest.values(), key=lambda d: d.version)
