"""Profiles you can read and review: what an agent normally touches, as learned (`GET /v1/profile/{agent}`,
viewer), and pinning a reviewed profile as "what this agent may do" (`POST /v1/profile/{agent}/pin`,
admin; audited), after which anything outside it is a drift finding.

Resources and their first-seen times come from the agent's data-access baseline; tools and models from the
activity journal (its retained history); approvals from the audit log. Pinned profiles live in
`STATE_DIR/profiles/` and are loaded at start."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from spanwarden.detectors.pinned_profile import PinnedProfile
from spanwarden.embedded.activity_journal import file_name, read_activity
from spanwarden.embedded.commands_api import authorize
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry, read_entries
from spanwarden.enforcers.roles import TokenBook
from spanwarden.pipeline import Pipeline


def load_pinned(directory: Path) -> dict[str, PinnedProfile]:
    out = {}
    for path in sorted(directory.glob("*.json")) if directory.exists() else []:
        doc = json.loads(path.read_text())
        out[str(doc["agent"])] = PinnedProfile.from_dict(doc)
    return out


class ProfileApi:
    def __init__(self, pipeline: Pipeline, tokens: TokenBook, state_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.pipeline = pipeline
        self.tokens = tokens
        self.state_dir = state_dir
        self.clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/profile/{agent}", self.show)
        app.router.add_post("/v1/profile/{agent}/pin", self.pin)

    def profile(self, agent_id: str) -> dict[str, Any] | None:
        bank = self.pipeline.detectors.get(agent_id)
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
                     for _, e in read_entries(self.state_dir / "audit.jsonl")
                     if isinstance(e, AuditEntry) and e.kind == "approval" and e.agent.id == agent_id
                     and e.data.get("status") == "approved"]
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

    async def show(self, request: web.Request) -> web.Response:
        allowed = authorize(request, self.tokens, "status", self.pipeline, self.clock())
        if isinstance(allowed, web.Response):
            return allowed
        profile = self.profile(request.match_info["agent"])
        if profile is None:
            return web.json_response({"code": 404, "message": "no such agent"}, status=404)
        return web.json_response(profile)

    async def pin(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        allowed = authorize(request, self.tokens, "profile_pin", self.pipeline, self.clock(), agent_id)
        if isinstance(allowed, web.Response):
            return allowed
        try:
            body: dict[str, Any] = await request.json() if request.can_read_body else {}
            reason = str(body.get("reason", "")).strip()
            given = body.get("profile")
            current = self.profile(agent_id)
            source = given if given is not None else current
            if source is None:
                raise KeyError(f"no learned profile for {agent_id!r}; pin one from a file")
            pinned = PinnedProfile(frozenset(map(str, source["resources"])), frozenset(map(str, source["tools"])),
                                   frozenset(map(str, source["models"])), allowed.actor, self.clock())
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"cannot pin: {exc}"}, status=400)
        if not reason:
            return web.json_response({"code": 400, "message": "pinning needs a reason"}, status=400)
        directory = self.state_dir / "profiles"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / file_name(agent_id).replace(".jsonl", ".json")).write_text(
            json.dumps({"agent": agent_id, **pinned.to_dict()}, indent=2))
        self.pipeline.pinned[agent_id] = pinned
        self.pipeline.audit.append("config_change", self.pipeline.agents.get(agent_id, AgentRef(agent_id)),
                                   allowed.actor, f"pinned profile: {reason}", self.clock(), (),
                                   self.pipeline.policy.version, {"command": "profile_pin", **pinned.to_dict()})
        return web.json_response(pinned.to_dict())
