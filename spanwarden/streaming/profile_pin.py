"""`POST /v1/profile/{agent}/pin` on `serve --kafka`: a reviewed profile pinned where the agent's baseline
lives, its worker, as `serve` pins it in its pipeline (`embedded/profile_api.py`).

The gateway builds the profile to pin (the learned one, `profile_route.py`, when none is given), sends it as a
`pin` command on the commands topic keyed by agent, and the agent's worker puts it in force (drift from it is
then a `pinned_profile` finding), audits it (a `config_change` entry, through the audit topic to the chain)
and keeps it in the agent's state, so it survives a restart, a `kill -9` and a rebalance. The worker answers
on the decisions topic with what is pinned; asking again with the same command id answers again, pins once."""

from __future__ import annotations

import uuid
from typing import Any

from spanwarden.detectors.pinned_profile import PinnedProfile
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.pipeline import Pipeline
from spanwarden.streaming.leases_route import LeaseGateway, ask_worker

PARTS = ("resources", "tools", "models")


def command(source: dict[str, Any], actor: str, reason: str, now_s: float) -> dict[str, Any]:
    """The pin command for a profile (`serve`'s shape: each part a list or a dict keyed by name); KeyError or
    TypeError for one that is not a profile."""
    return {"id": uuid.uuid4().hex, "type": "pin", "actor": actor, "reason": reason, "now_s": now_s,
            "pinned": {part: sorted(map(str, source[part])) for part in PARTS}}


async def ask_to_pin(gateway: LeaseGateway, agent_id: str, pin: dict[str, Any],
                     timeout_s: float) -> dict[str, Any] | None:
    """What the worker pinned, or None when no worker answered within `timeout_s`."""
    return await ask_worker(gateway, agent_id, pin, timeout_s)


def apply(pipeline: Pipeline, agent_id: str, pin: dict[str, Any]) -> PinnedProfile:
    """On the worker (pure but for the pipeline's audit buffer): put the pin in force and audit it."""
    given = pin["pinned"]
    pinned = PinnedProfile(frozenset(map(str, given["resources"])), frozenset(map(str, given["tools"])),
                           frozenset(map(str, given["models"])), str(pin["actor"]), float(pin["now_s"]))
    pipeline.pinned[agent_id] = pinned
    pipeline.audit.append("config_change", pipeline.agents.get(agent_id, AgentRef(agent_id)), str(pin["actor"]),
                          f"pinned profile: {pin['reason']}", float(pin["now_s"]), (), pipeline.policy.version,
                          {"command": "profile_pin", **pinned.to_dict()})
    return pinned
