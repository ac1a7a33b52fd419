"""Access requests: instead of acting on the whole agent, ask a human about one thing and hold only the
calls it covers — a sensitive or new resource outside the agent's profile (from a `data_access` finding), a
write to an external host (asked by the guard at the call's start), or a first call to a model far dearer
than the agent's own (`spanwarden.model_gate`). The human's answer changes the agent's profile (or the
models it may call) and lifts or keeps the scoped decision."""

from __future__ import annotations

from typing import Any

from spanwarden import model_gate
from spanwarden.collector.ingest_auth import is_untrusted
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import UNKNOWN_AGENT
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.enforcers.access_requests import APPROVED, AccessBook, AccessRequest
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.stages.decide import Decide
from spanwarden.stages.detect import Detect
from spanwarden.stages.shared import Shared


def scope_of(resource: str) -> str:
    """The scope of the decisions that hold an agent's calls to a resource it asked for: a model's calls by
    the model's name, any other resource's by the resource."""
    return resource if model_gate.is_model(resource) else f"resource:{resource}"


class Access:
    def __init__(self, shared: Shared, detect: Detect, decide: Decide, enabled: bool,
                 prices: PriceTable | None = None) -> None:
        self.shared = shared
        self.detect = detect
        self.decide = decide
        self.enabled = enabled  # off where no one could answer them (Faust workers)
        self.book = AccessBook()
        self._prices = prices  # for pricing a model before its first call; loaded if needed

    @property
    def prices(self) -> PriceTable:
        if self._prices is None:
            self._prices = PriceTable.load()
        return self._prices

    def asks_for(self, finding: Finding, ref: AgentRef) -> bool:
        """Whether this finding is answered by a request (where the policy asks for access) instead of the
        ladder."""
        rules = self.shared.policy.access_requests
        return (self.enabled and finding.detector == "data_access" and finding.kind in rules.kinds
                and bool(finding.subject) and ref.environment in rules.environments)

    def request(self, finding: Finding, ref: AgentRef, now_s: float) -> list[Decision]:
        """Hold the agent's calls to this one resource (or model) until a human answers (a denied one stays
        blocked)."""
        if self._granted(ref.id, finding.subject, now_s):
            return []  # a human approved it already (the approval outlived what the detectors remember)
        ladder = self.decide.ladder(ref.id)
        scope = scope_of(finding.subject)
        if scope in ladder.scoped:
            return []  # already waiting for an answer, or denied
        policy = self.shared.policy
        actor = f"policy:access-requests@{policy.version}"
        request, _ = self.book.open(ref.id, finding.subject, now_s, finding.reason)
        self.shared.audit.append("approval", ref, actor,
                                 f"access to {finding.subject} requested: {finding.reason}", finding.time_s,
                                 finding.evidence, policy.version,
                                 {"kind": "access", "request_id": request.id, "resource": finding.subject,
                                  "status": request.status})
        decision = ladder.scoped_decision(Action.REQUIRE_APPROVAL, scope,
                                          f"access to {finding.subject} waits for a human (request {request.id})",
                                          actor, now_s, command=f"access_request:{request.id}")
        return [self.decide.record(decision, ref, finding.evidence)]

    def latest(self, agent_id: str, resource: str) -> AccessRequest | None:
        return next((r for r in reversed(self.book.of_agent(agent_id)) if r.resource == resource), None)

    def egress(self, agent_id: str, resource: str, summary: str, now_s: float) -> AccessRequest | None:
        """A write to an external host, held by the agent's guard at its start: None when the host is in the
        agent's profile; else its access request (opened, with its scoped decision, if new)."""
        bank = self.detect.banks.get(agent_id)
        if bank is not None and resource in bank.data_access.profile and bank.data_access.granted.get(
                resource, float("inf")) > now_s or self._granted(agent_id, resource, now_s):
            return None
        finding = Finding(agent_id, "data_access", "egress_outside_profile", 1.0, Severity.WARNING, 1.0, 0.0,
                          "writes", f"{summary}: a write to {resource}, outside its profile", now_s,
                          subject=resource)
        self.request(finding, self.shared.ref(agent_id), now_s)
        return self.latest(agent_id, resource)

    def model(self, agent_id: str, model: str, now_s: float) -> AccessRequest | None:
        """A first call to a model, asked about by the agent's guard at its start (`spanwarden.model_gate`):
        None when it may go; else the model's access request (opened, with its finding and scoped decision, if
        new; a denied one is returned as it stands)."""
        ref = self.shared.agents.get(agent_id)
        rules = self.shared.policy.access_requests
        if (not model or ref is None or not rules.models or ref.environment not in rules.environments
                or agent_id == UNKNOWN_AGENT or is_untrusted(agent_id)):
            return None
        resource = model_gate.resource(model)
        if self._granted(agent_id, resource, now_s):
            return None
        ladder = self.decide.ladders.get(agent_id)  # looked at, not made: most questions change nothing
        if ladder is None or scope_of(resource) not in ladder.scoped:
            bank = self.detect.bank(agent_id)
            finding = model_gate.judge(bank, model, self.prices, now_s) if bank is not None else None
            if finding is None:
                return None
            self.shared.audit_finding(finding, ref)
            self.request(finding, ref, now_s)
        return self.latest(agent_id, resource)

    def answer(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
               for_s: float | None = None) -> Decision:
        """A human's answer: approved, the resource joins the agent's profile (a model, the models it may call)
        for `for_s` or for good, and its calls go; denied, it leaves the profile and stays blocked until a
        human lifts the scope."""
        request = self.book.answer(request_id, approve, actor, now_s, reason, for_s)
        shared = self.shared
        ref = shared.ref(request.agent_id)
        self._apply(request)
        shared.audit.append("approval", ref, f"human:{actor}", f"access to {request.resource} {request.status}: "
                            f"{reason}", now_s, (), shared.policy.version,
                            {"kind": "access", "request_id": request.id, "resource": request.resource,
                             "status": request.status, "until_s": request.until_s})
        decision = self.decide.ladder(request.agent_id).scoped_decision(
            Action.ALLOW if approve else Action.HALT, scope_of(request.resource),
            f"access to {request.resource} {request.status} by {actor}: {reason}", f"human:{actor}", now_s,
            command=f"access_request:{request.id}")
        return self.decide.record(decision, ref)

    def _apply(self, request: AccessRequest) -> None:
        """An answer into what the agent's detectors know: approved, the resource joins its profile (a model,
        the models it may call) until the approval ends; denied, it leaves it."""
        bank = self.detect.bank(request.agent_id)
        if bank is None:
            return
        approved = request.status == APPROVED
        if model_gate.is_model(request.resource):
            model = request.resource[len(model_gate.PREFIX):]
            if approved:
                bank.cost.price.accept(model, request.until_s)
            else:
                bank.cost.price.refuse(model)
        elif approved:
            bank.data_access.allow(request.resource, request.answered_s or request.opened_s, request.until_s)
        else:
            bank.data_access.profile.pop(request.resource, None)

    def _granted(self, agent_id: str, resource: str, now_s: float) -> bool:
        """Whether a human's approval is in force for this resource (re-applied to the detectors, which may
        have started again since: a lost snapshot)."""
        granted = self.book.granted(agent_id, resource, now_s)
        if granted is not None:
            self._apply(granted)
        return granted is not None

    def restore_answer(self, request: AccessRequest) -> None:
        """A human's answer recovered from the audit log (newer than the snapshot, or the snapshot was lost)."""
        if self.book.restore(request):
            self.shared.dirty.add(request.agent_id)
            self._apply(request)

    def to_state(self) -> dict[str, Any]:
        return self.book.to_state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.book.load_state(state)
