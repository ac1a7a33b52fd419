"""What a guard asks for itself — `POST /v1/leases`, `POST /v1/approvals` — is bound to the agent its token
speaks for, by the ingest rule (`IngestGate.acting_for`): a stranger can neither take a victim's budget in
leases nor open approval requests in its name. A refusal is answered 401/403 and counted by route and status
in `/metrics` (`spanwarden_http_requests`), not written to the audit log: unauthenticated noise must not
cost an fsync each. `AGENT_ROUTES` is the route table's part for agent principals."""

from __future__ import annotations

from aiohttp import web

from spanwarden.collector.ingest_auth import IngestGate, IngestRefused

AGENT_ROUTES = {("POST", "/v1/leases"), ("POST", "/v1/approvals")}


def acting_agent(request: web.Request, gate: IngestGate, claimed: str) -> str | web.Response:
    """The agent the request may act for, or the refusal to answer with."""
    try:
        return gate.acting_for(request.headers.get("Authorization", ""), claimed)
    except IngestRefused as exc:
        return web.json_response({"code": exc.status, "message": str(exc)}, status=exc.status)
