"""Profiles you can read and review: what an agent normally touches, as learned (`GET /v1/profile/{agent}`,
viewer), and pinning a reviewed profile as "what this agent may do" (`POST /v1/profile/{agent}/pin`,
admin; audited), after which anything outside it is a drift finding.

Resources and their first-seen times come from the agent's data-access baseline; tools and models from the
activity journal (its retained history); approvals from the audit log. Pinned profiles live in
`STATE_DIR/profiles/` and are loaded at start."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spanwarden.detectors.pinned_profile import PinnedProfile
from spanwarden.embedded.activity_journal import file_name, read_activity
from spanwarden.enforcers.audit_index import agent_lines
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry, read_entries
from spanwarden.pipeline import Pipeline


def load_pinned(directory: Path) -> dict[str, PinnedProfile]:
    out = {}
    for path in sorted(directory.glob("*.json")) if directory.exists() else []:
        doc = json.loads(path.read_text())
        out[str(doc["agent"])] = PinnedProfile.from_dict(doc)
    return out


def _approvals(log: Path, agent_id: str) -> Iterator[AuditEntry]:
    """The agent's approval entries: through the audit index (a seek per entry), or by reading the log."""
    lines = agent_lines(log, agent_id, ("approval",))
    if lines is None:
        yield from (e for _, e in read_entries(log) if isinstance(e, AuditEntry))
        return
    for line in lines:
        try:
            yield AuditEntry.from_json(line.decode())
        except (ValueError, TypeError, KeyError):
            continue


class ProfileApi:
    """What `GET /v1/profile/{agent}` and its pin answer on `serve` (the routes are the server layer's)."""

    def __init__(self, pipeline: Pipeline, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.pipeline = pipeline
        self.state_dir = state_dir
        self.clock = clock

    def profile(self, agent_id: str) -> dict[str, Any] | None:
        bank = self.pipeline.bank(agent_id)  # paged back in if it was paged out
        if bank is None:
            return None
        ref = self.pipeline.agents.get(agent_id, AgentRef(agent_id))
        tools: dict[str, dict[str, float]] = {}
        models: dict[str, dict[str, float]] = {}
        spans = errors = 0
        for item in read_activity(self.state_dir / "activity", agent_id):
            spans += 1
            errors += bool(item["error"])
            for table, key in ((tools, item["tool"]), (models, item["model"])):
                if key:
                    seen = table.setdefault(key, {"calls": 0, "first_seen_s": item["t"]})
                    seen["calls"] += 1
        approvals = [{"tool": e.data.get("tool", ""), "by": e.actor, "time_s": e.time_s}
                     for e in _approvals(self.state_dir / "audit.jsonl", agent_id)
                     if e.kind == "approval" and e.agent.id == agent_id and e.data.get("status") == "approved"]
        resources = {name: {"uses": int(count), "first_seen_s": first}
                     for name, (count, first) in bank.data_access.profile.items()}
        pinned = self.pipeline.pinned.get(agent_id)
        drift = None if pinned is None else {
            "resources": sorted(set(resources) - pinned.resources), "tools": sorted(set(tools) - pinned.tools),
            "models": sorted(set(models) - pinned.models)}
        return {"agent": agent_id, "owner": ref.owner, "team": ref.team, "environment": ref.environment,
                "resources": dict(sorted(resources.items())), "tools": dict(sorted(tools.items())),
                "models": dict(sorted(models.items())), "spend_usd_last_hour": round(bank.cost.hour.sum, 6),
                "error_rate": round(errors / spans, 6) if spans else None, "approvals": approvals,
                "pinned": pinned.to_dict() if pinned else None, "drift_from_pinned": drift}

    def pin(self, agent_id: str, actor: str, reason: str, given: dict[str, Any] | None) -> dict[str, Any]:
        """Pin `given` (the learned profile when None) for the agent, audited; KeyError/ValueError/TypeError
        for one that cannot be pinned."""
        source = given if given is not None else self.profile(agent_id)
        if source is None:
            raise KeyError(f"no learned profile for {agent_id!r}; pin one from a file")
        pinned = PinnedProfile(frozenset(map(str, source["resources"])), frozenset(map(str, source["tools"])),
                               frozenset(map(str, source["models"])), actor, self.clock())
        directory = self.state_dir / "profiles"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / file_name(agent_id).replace(".jsonl", ".json")).write_text(
            json.dumps({"agent": agent_id, **pinned.to_dict()}, indent=2))
        self.pipeline.pinned[agent_id] = pinned
        self.pipeline.audit.append("config_change", self.pipeline.agents.get(agent_id, AgentRef(agent_id)),
                                   actor, f"pinned profile: {reason}", self.clock(), (),
                                   self.pipeline.policy.version, {"command": "profile_pin", **pinned.to_dict()})
        return pinned.to_dict()
