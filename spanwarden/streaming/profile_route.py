"""`GET /v1/profile/{agent}` on `serve --kafka` (the route is the server layer's, as for `serve`): the same
answer as `embedded/profile_api.py`, assembled from where each part lives on Kafka.

- The learned part — the resources the agent touches with their first-seen times, its spend in the last
  hour, its identity — is the agent's baseline, held by the worker that owns the agent: the gateway asks
  it with a `profile` command on the commands topic (keyed by agent) and the worker replies on the
  decisions topic, as for spend leases (`leases_route.py`). A restarted worker answers from the agent's
  saved state.
- Tools, models and the error rate come from the gateway's activity journal (the workers' rollups,
  `activity_feed.py`), approvals from the audit log the gateway writes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from spanwarden.activity_journal import read_activity
from spanwarden.enforcers.audit_log import AuditEntry, read_entries
from spanwarden.pipeline import Pipeline
from spanwarden.streaming.leases_route import LeaseGateway, ask_worker


def worker_part(pipeline: Pipeline, agent_id: str) -> dict[str, Any]:
    """What the worker answers (on the worker; pure): `{"unknown": true}` for an agent it has no baseline of."""
    bank = pipeline.bank(agent_id)
    if bank is None:
        return {"unknown": True}
    ref = pipeline.agents.get(agent_id)
    pinned = pipeline.pinned.get(agent_id)
    return {"agent": agent_id, "owner": ref.owner if ref else "", "team": ref.team if ref else "",
            "environment": ref.environment if ref else "",
            "resources": {name: {"uses": int(count), "first_seen_s": first}
                          for name, (count, first) in sorted(bank.data_access.profile.items())},
            "spend_usd_last_hour": round(bank.cost.hour.sum, 6), "pinned": pinned.to_dict() if pinned else None}


async def ask_for_profile(gateway: LeaseGateway, agent_id: str, timeout_s: float) -> dict[str, Any] | None:
    """The worker's part of the profile, or None when no worker answered within `timeout_s`."""
    return await ask_worker(gateway, agent_id, {"id": uuid.uuid4().hex, "type": "profile"}, timeout_s)


def assemble(part: dict[str, Any], state_dir: Path, agent_id: str) -> dict[str, Any] | None:
    """The whole profile, as `serve` gives it (None when the worker has no baseline of the agent). Reads the
    journal and the audit log: run it off the event loop."""
    if part.get("unknown"):
        return None
    tools: dict[str, dict[str, float]] = {}
    models: dict[str, dict[str, float]] = {}
    calls = errors = 0
    for item in read_activity(state_dir / "activity", agent_id):
        n = int(item.get("n", 1))
        calls += n
        errors += n if item.get("error") else 0
        for table, key in ((tools, item.get("tool")), (models, item.get("model"))):
            if key:
                seen = table.setdefault(str(key), {"calls": 0, "first_seen_s": item["t"]})
                seen["calls"] += n
                seen["first_seen_s"] = min(seen["first_seen_s"], item["t"])
    approvals = [{"tool": e.data.get("tool", ""), "by": e.actor, "time_s": e.time_s}
                 for _, e in read_entries(state_dir / "audit.jsonl")
                 if isinstance(e, AuditEntry) and e.kind == "approval" and e.agent.id == agent_id
                 and e.data.get("status") == "approved"]
    resources = part.get("resources", {})
    pinned = part.get("pinned")
    drift = None if not pinned else {
        "resources": sorted(set(resources) - set(pinned.get("resources", ()))),
        "tools": sorted(set(tools) - set(pinned.get("tools", ()))),
        "models": sorted(set(models) - set(pinned.get("models", ())))}
    return {"agent": agent_id, "owner": part.get("owner", ""), "team": part.get("team", ""),
            "environment": part.get("environment", ""), "resources": resources,
            "tools": dict(sorted(tools.items())), "models": dict(sorted(models.items())),
            "spend_usd_last_hour": part.get("spend_usd_last_hour", 0.0),
            "error_rate": round(errors / calls, 6) if calls else None, "approvals": approvals,
            "pinned": pinned, "drift_from_pinned": drift}
