"""Who may report spans for which agent.

Agents send a bearer token with their spans (`OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>`);
an `agent` token names the agent ids it speaks for (fnmatch patterns). A request carrying spans of any
other agent is refused whole (403), so a compromised agent can neither get another agent halted nor hide
behind it. Modes: `required` (no valid token: 401), `untrusted` (no token: the spans are kept under
`untrusted:<claimed agent>` — learned and audited apart from the real agent, never enforced on), `off`
(every span trusted, for a service only its own machine can reach).

The same rule binds what a guard asks for itself — spend leases and approval requests (`acting_for`): an
agent token for that agent, nothing else (a human's token neither: a lease or an approval request is the
agent's own); without a token, `untrusted` mode acts for `untrusted:<agent>` only."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord
from spanwarden.enforcers.roles import Principal, Role, TokenBook

UNTRUSTED_PREFIX = "untrusted:"
MODES = ("required", "untrusted", "off")


class IngestRefused(Exception):
    """Spans that may not be taken in: `status` 401 (who are you) or 403 (not yours to report)."""

    def __init__(self, status: int, message: str, principal: str = "", agent: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.principal = principal
        self.agent = agent


def is_untrusted(agent_id: str) -> bool:
    return agent_id.startswith(UNTRUSTED_PREFIX)


class IngestGate:
    def __init__(self, tokens: TokenBook, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"ingest_auth must be one of {MODES}, not {mode!r}")
        self.tokens = tokens
        self.mode = mode

    def caller(self, authorization: str, spans: bool = False) -> Principal | None:
        """Who calls an agent's route (spans, a lease, an approval request): the token's principal, or None
        where none is needed (auth off; no token in `untrusted` mode); IngestRefused(401) for a missing token
        where one is required, and for one that is not valid. Which agent it may act for is checked once the
        request names it (`admit`, `acting_for`)."""
        if self.mode == "off":
            return None
        principal = self.tokens.authenticate(authorization) if authorization else None
        if principal is None and (authorization or self.mode == "required"):
            if spans:
                raise IngestRefused(401, "spans need a valid bearer token (OTEL_EXPORTER_OTLP_HEADERS="
                                         "Authorization=Bearer%20<token>, from `spanwarden token add`)")
            raise IngestRefused(401, "requests for an agent need its agent token (the guard sends the "
                                     "Authorization header of OTEL_EXPORTER_OTLP_HEADERS)")
        return principal

    def admit(self, authorization: str, records: list[SpanRecord]) -> list[SpanRecord]:
        """The records as they may be taken in, or IngestRefused."""
        if self.mode == "off":
            return records
        principal = self.caller(authorization, spans=True)
        if principal is None:
            return [r._replace(agent_id=UNTRUSTED_PREFIX + r.agent_id, flags=(*r.flags, "untrusted"))
                    for r in records]
        own = principal.agents[0] if principal.role is Role.AGENT and len(principal.agents) == 1 and not any(
            c in principal.agents[0] for c in "*?[") else None
        if own is not None:  # spans that do not say whose they are belong to the one agent the token is for
            records = [r._replace(agent_id=own) if r.agent_id == UNKNOWN_AGENT else r for r in records]
        for agent_id in _agents(records):
            if not may_report(principal, agent_id):
                raise IngestRefused(403, f"token {principal.name!r} may not report spans for agent {agent_id!r}",
                                    principal.actor, agent_id)
        return records

    def acting_for(self, authorization: str, agent_id: str) -> str:
        """The agent a lease or approval request from this caller is for: `agent_id` when its token speaks
        for it (or auth is off), `untrusted:<agent_id>` without a token in `untrusted` mode; else
        IngestRefused (401 without a valid token, 403 for a token that speaks for other agents)."""
        if self.mode == "off":
            return agent_id
        principal = self.caller(authorization)
        if principal is None:
            return UNTRUSTED_PREFIX + agent_id
        if principal.role is not Role.AGENT or not may_report(principal, agent_id):
            raise IngestRefused(403, f"token {principal.name!r} may not act for agent {agent_id!r}",
                                principal.actor, agent_id)
        return agent_id


def may_report(principal: Principal, agent_id: str) -> bool:
    """Agent tokens for their own agents; a human's token (oncall or above) for any, as a replay tool would."""
    if principal.role is Role.AGENT:
        return any(fnmatch.fnmatchcase(agent_id, pattern) for pattern in principal.agents)
    return principal.role >= Role.ONCALL


def _agents(records: Iterable[SpanRecord]) -> set[str]:
    return {r.agent_id for r in records}
