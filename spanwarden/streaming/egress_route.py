"""Data egress and the model gate on `serve --kafka`: the guard's questions before a write to an external host
and before a first call to a model (`POST /v1/approvals` with `egress` or `model`, `server/approvals.py`)
answered by the agent's worker, which holds the profile, the prices and the access book they are judged on,
as `serve` answers them from its pipeline (`Pipeline.egress_request`, `Pipeline.model_request`).

The gateway sends an `egress` (or `model`) request on the commands topic keyed by agent; the worker asks its
pipeline (None when the host is in the agent's profile or the model may go; else the access request, opened
with its finding and scoped hold if new: audited through the audit topic, kept in the agent's state) and
answers on the decisions topic with the request and the agent's views (its scoped hold with them). The
gateway lists the request from the audit trail and sends the human's answer to that worker, as for every
access request."""

from __future__ import annotations

import uuid
from typing import Any

from spanwarden.enforcers.access_requests import AccessRequest
from spanwarden.pipeline import Pipeline
from spanwarden.streaming.leases_route import LeaseGateway, ask_worker


async def ask(gateway: LeaseGateway, agent_id: str, resource: str, summary: str, now_s: float,
              timeout_s: float) -> dict[str, Any] | None:
    """The worker's answer (`{"access": request or None}`), or None when none came within `timeout_s`."""
    return await ask_worker(gateway, agent_id, {"id": uuid.uuid4().hex, "type": "egress", "resource": resource,
                                                "summary": summary, "now_s": now_s}, timeout_s)


async def ask_model(gateway: LeaseGateway, agent_id: str, model: str, now_s: float,
                    timeout_s: float) -> dict[str, Any] | None:
    return await ask_worker(gateway, agent_id, {"id": uuid.uuid4().hex, "type": "model", "model": model,
                                                "now_s": now_s}, timeout_s)


def answer(pipeline: Pipeline, agent_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """On the worker: what the pipeline says of the write, or of the first call to a model."""
    if request["type"] == "model":
        found = pipeline.model_request(agent_id, str(request["model"]), float(request["now_s"]))
    else:
        found = pipeline.egress_request(agent_id, str(request["resource"]), str(request["summary"]),
                                        float(request["now_s"]))
    return {"access": found.to_dict() if found is not None else None}


def request_of(reply: dict[str, Any]) -> AccessRequest | None:
    found = reply.get("access")
    return AccessRequest(**found) if isinstance(found, dict) else None
