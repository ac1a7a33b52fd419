"""What a runtime supplies to the server layer (`spanwarden.server.app.build`): `serve` (the embedded
service) and `serve --kafka` (the gateway) each implement `Runtime`, and the one route table, its auth and
its durability rules are the same for both. What a runtime cannot do yet raises `NotOffered` (answered 501
with its one line), so the route, its role and its auth stay the same everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.audit_sink import AuditSink
from spanwarden.collector.control_channel import DecisionBoard
from spanwarden.collector.ingest_auth import IngestGate
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.enforcers.roles import TokenBook
from spanwarden.settings import Settings

if TYPE_CHECKING:
    from spanwarden.server.access import AccessApi
    from spanwarden.server.approvals import ApprovalsApi
    from spanwarden.server.durability import Durability
    from spanwarden.server.supervisor import Supervisor

# name -> (counter|gauge, help, value or {label values: value}, label names): what /metrics shows
Figures = dict[str, tuple[str, str, Any, tuple[str, ...]]]


class NotOffered(Exception):
    """This runtime does not offer what was asked (answered 501 with the message: one line, what to do)."""


class Unavailable(Exception):
    """This runtime cannot do it right now (answered 503: the client retries)."""


class Audited(Protocol):
    """What a handler needs to audit: the sink, the agents known, the policy in force."""

    @property
    def sink(self) -> AuditSink: ...

    @property
    def agents(self) -> dict[str, AgentRef]: ...

    @property
    def policy(self) -> Policy: ...


class Runtime(Audited, Protocol):
    """One runtime behind the HTTP app. `kind` is "embedded" or "kafka"."""

    kind: str
    settings: Settings
    clock: Callable[[], float]
    tokens: TokenBook
    ingest: IngestGate
    board: DecisionBoard
    durability: Durability
    supervisor: Supervisor
    approvals: ApprovalsApi
    access: AccessApi

    async def take_spans(self, message: ExportTraceServiceRequest, authorization: str) -> None:
        """Take in one decoded OTLP request (raises IngestRefused, DeliveryFailed or AuditUnwritable)."""

    async def apply_command(self, agent_id: str, action: Action, reason: str, actor: str, now_s: float,
                            expires_s: float | None, throttle_per_s: float | None, selected_by: dict[str, str],
                            calls: str) -> Decision:
        """Make the on-call decision (in-process, or through the agent's worker); CommandNotApplied if it
        could not be confirmed in time."""

    async def answer_access(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
                            for_s: float | None) -> Decision:
        """Apply an on-call answer to an access request; the decision it made."""

    def knows(self, agent_id: str) -> bool:
        """Whether the service has heard of the agent (spans, or a decision for it)."""

    def status(self) -> list[dict[str, Any]]:
        """Every agent with its decision (and what else the runtime knows of it)."""

    def health_body(self) -> dict[str, Any]:
        """The runtime's own figures for `/healthz`."""

    def figures(self) -> Figures:
        """The runtime's own figures for `/metrics` (no agent names)."""

    def agent_figures(self) -> Figures:
        """Per-agent figures for `/metrics/agents` (NotOffered where the runtime has none)."""

    async def grant_lease(self, agent_id: str, returning: str, unused_usd: float,
                          reservation: str) -> dict[str, Any]:
        """A spend lease for the agent (LeaseRefused when the book is full; CommandNotApplied; NotOffered)."""

    def profile(self, agent_id: str) -> dict[str, Any] | None | Awaitable[dict[str, Any] | None]:
        """The agent's learned profile, None for an agent never seen (NotOffered). May be a coroutine (a
        runtime that asks the agent's worker)."""

    def pin_profile(self, agent_id: str, actor: str, reason: str,
                    given: dict[str, Any] | None) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """Pin a reviewed profile (the learned one when `given` is None); KeyError/ValueError for a bad one.
        May be a coroutine (a runtime that pins on the agent's worker)."""

    def reload_policy(self, actor: str) -> str | None | Awaitable[str | None]:
        """Load the policy file again; the error when it is refused (NotOffered). May be a coroutine (a
        runtime that publishes the policy before answering)."""

    def acknowledge_broken_audit(self, actor: str, reason: str) -> str:
        """Set the broken chain aside and start a new one; the name it was set aside as."""
