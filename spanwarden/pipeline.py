"""The pipeline both runtimes share: records → event time held to the service clock and put in order →
per-agent detectors → findings → per-agent ladder → decisions, with every finding and decision written to
the audit sink. No network, no clock of its own (time comes with the records' receive times and `advance`):
the embedded service and the Faust worker only move data in and out of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from spanwarden import model_gate
from spanwarden.audit_sink import AuditSink
from spanwarden.collector import agent_identity
from spanwarden.collector.ingest_auth import is_untrusted
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord
from spanwarden.detectors.agent_detectors import AgentDetectors, DetectorSettings
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.detectors.peer_prior import FLEET, PeerPriors
from spanwarden.detectors.pinned_profile import PinnedProfile, ProfileDrift
from spanwarden.detectors.team_budget import TeamBudgetConfig, TeamBudgets
from spanwarden.detectors.window_totals import WindowTotals
from spanwarden.enforcers.access_requests import AccessBook, AccessRequest
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Action, Decision, allow
from spanwarden.enforcers.ladder import AgentLadder
from spanwarden.enforcers.policy import Policy, RuleContext
from spanwarden.event_time import Arrivals, TimeBounds
from spanwarden.model_refit import Refitter, Reservoir, SyncRefitter

STATE_VERSION = 1
REFIT_MIN_VECTORS = 256
REFIT_EVERY_S = 6 * 3600.0


def detector_settings_for(policy: Policy, base: DetectorSettings | None = None) -> DetectorSettings:
    """Detector settings with the policy's budgets and sensitive-resource tags filled in."""
    base = base or DetectorSettings()
    return replace(
        base,
        cost_velocity=replace(base.cost_velocity, hourly_budget_usd=policy.budgets.agent_usd_per_hour,
                              daily_budget_usd=policy.budgets.agent_usd_per_day),
        data_access=replace(base.data_access, sensitive_patterns=policy.sensitive_resources
                            or base.data_access.sensitive_patterns),
        write_volume=replace(base.write_volume, held_environments=policy.approvals.environments,
                             held_effects=tuple((r.effect, r.resources) for r in policy.approvals.effects)),
    )


def _team_budget_config(policy: Policy) -> TeamBudgetConfig:
    return TeamBudgetConfig(policy.budgets.team_usd_per_hour, policy.budgets.team_usd_per_day)


class Pipeline:
    """Per-agent detection and enforcement. `on_decision` is called with each new decision."""

    def __init__(self, policy: Policy, audit: AuditSink, settings: DetectorSettings | None = None,
                 on_decision: Callable[[Decision], None] | None = None,
                 on_finding: Callable[[Finding], None] | None = None, refitter: Refitter | None = None,
                 seed: int = 0, fleet_learning: bool = True, access_requests: bool = True,
                 time_bounds: TimeBounds | None = None, prices: PriceTable | None = None) -> None:
        self.policy = policy
        self._prices = prices  # for pricing a model before its first call (`model_request`); loaded if needed
        self.audit = audit
        self.settings = detector_settings_for(policy, settings)
        self.on_decision = on_decision or (lambda d: None)
        self.on_finding = on_finding or (lambda f: None)
        # A runtime without fleet learning (a Kafka worker) ships its agents' normal minute vectors elsewhere
        # (to the fleet's refitter, `streaming/fleet_model.py`) through this, before they are dropped.
        self.on_normal_vectors: Callable[[list[list[float]], float], None] = lambda vectors, t: None
        self.detectors: dict[str, AgentDetectors] = {}
        self.ladders: dict[str, AgentLadder] = {}
        self.agents: dict[str, AgentRef] = {}
        self.records_seen = 0
        self.dirty: set[str] = set()  # agents whose state changed since the last snapshot took them
        # Agents whose detectors were paged out to disk (spanwarden/embedded/agent_pager.py), and how to read
        # them back: `bank()` and the record path page them in.
        self.paged_out: set[str] = set()
        self.pager: Callable[[str], dict[str, Any] | None] | None = None
        # Records judged at most per call (None: all that are due); the service keeps each step short and
        # calls `judge_due` while `backlog()`.
        self.judge_limit: int | None = None
        self.priors = PeerPriors(self.settings.cost_velocity.windows)
        self.team_budgets = TeamBudgets(_team_budget_config(policy))
        self.refitter = refitter or SyncRefitter()
        self.seed = seed
        self.reservoir = Reservoir(seed=seed)
        self.behaviour_model: IsolationModel | None = None
        self.next_fit_s = 0.0
        # Peer priors, team budgets and the behaviour model learn across agents; a Faust worker sees only
        # its partitions' agents, so it runs without them rather than learn from a partial fleet.
        self.fleet_learning = fleet_learning
        self.access = AccessBook()
        self.access_requests = access_requests  # off where no one could answer them (Faust workers)
        self.pinned: dict[str, PinnedProfile] = {}  # reviewed profiles: drift from them is a finding
        self._drift = ProfileDrift()
        # One process seeing the fleet shares one service clock; a partitioned worker keeps each agent's own,
        # so that its decisions depend on its records alone (and a replay decides the same).
        self.arrivals = Arrivals(time_bounds or TimeBounds(), shared=fleet_learning)

    def process(self, records: Iterable[SpanRecord]) -> list[Decision]:
        """Take records in as they arrive; judge those now due (see `spanwarden.event_time`)."""
        fitted = self.refitter.ready()
        if fitted is not None:
            self._use_model(fitted)
        arrived: set[str] = set()
        for record in records:
            self.records_seen += 1
            self.dirty.add(record.agent_id)
            self._agent_ref(record)
            self._bank(record)  # known from its first span on, though judged after the lateness bound
            self.arrivals.admit(record)
            arrived.add(record.agent_id)
        return self._judge_due(None if self.arrivals.shared else arrived)

    def advance(self, now_s: float) -> list[Decision]:
        """The service clock reached `now_s`: judge the records now due, and lapse decisions that expired, even
        of agents that send nothing (a shared clock only: a partitioned worker moves on its agents' records)."""
        if not self.arrivals.shared:
            return []
        self.arrivals.advance(now_s)
        decisions = self._judge_due(None)
        for agent_id, ladder in self.ladders.items():
            lapsed = ladder.tick(now_s) if ladder.current.expires_s is not None else None
            if lapsed is not None:
                self.dirty.add(agent_id)
                decisions.append(self._record_decision(lapsed, self.agents.get(agent_id, AgentRef(agent_id))))
        return decisions

    def backlog(self) -> bool:
        """Due records are left (the judge limit held them back)."""
        return self.arrivals.shared and self.arrivals.has_due()

    def judge_due(self) -> list[Decision]:
        """Judge (up to the limit) the records due now."""
        return self._judge_due(None)

    def _judge_due(self, agents: set[str] | None) -> list[Decision]:
        decisions: list[Decision] = []
        for now_s, record in self.arrivals.release(agents, self.judge_limit):
            decisions.extend(self._judge(record, now_s))
        return decisions

    def _judge(self, record: SpanRecord, now_s: float) -> list[Decision]:
        """Detect on one record in event-time order, decide at `now_s` (its decision time)."""
        decisions: list[Decision] = []
        agent_id = record.agent_id
        self.dirty.add(agent_id)
        ref = self.agents.get(agent_id) or self._agent_ref(record)
        bank = self._bank(record)
        ladder = self._ladder(agent_id)
        lapsed = ladder.tick(now_s)
        if lapsed is not None:
            decisions.append(self._record_decision(lapsed, ref))
        found = bank.observe(record)
        pinned = self.pinned.get(agent_id)
        if pinned is not None:
            found.extend(self._drift.observe(record, pinned))
        team_finding = (self.team_budgets.observe(record)
                        if self.team_budgets.active and self.fleet_learning else None)
        if team_finding is not None:
            found.append(team_finding)
        if bank.behaviour.normal_vectors:
            if self.fleet_learning:
                self._collect(bank, record.time_s)
            else:
                self.on_normal_vectors(bank.behaviour.normal_vectors, record.time_s)
                bank.behaviour.normal_vectors.clear()
        for finding in found:
            self.on_finding(finding)
            self.audit.append("finding", ref, f"detector:{finding.detector}", finding.reason,
                              finding.time_s, finding.evidence, self.policy.version,
                              {**finding.to_dict(), **agent_identity.audited(record.agent_source)})
            if agent_id == UNKNOWN_AGENT or is_untrusted(agent_id):
                continue  # nothing to enforce on: spans with no identity, or no token, come from anywhere
            if self.access_requests and self._asks_for_access(finding, ref):
                decisions.extend(self._request_access(finding, ref, ladder, now_s))
                continue
            context = RuleContext(ref.environment, ref.team, record.model, record.tool_name)
            decision = ladder.on_finding(finding, context, self.policy, now_s)
            if decision is not None:
                decisions.append(self._record_decision(decision, ref, finding.evidence))
        return decisions

    def _bank(self, record: SpanRecord) -> AgentDetectors:
        bank = self.detectors.get(record.agent_id) or self.bank(record.agent_id)
        if bank is None:
            prior = (self.priors.cost_prior(record.team, record.time_s, self._warmed_cost_histories)
                     if self.fleet_learning else None)
            bank = self.detectors[record.agent_id] = AgentDetectors(record.agent_id, self.settings, prior)
            bank.behaviour.model = self.behaviour_model
        return bank

    def bank(self, agent_id: str) -> AgentDetectors | None:
        """The agent's detectors, paged back in from disk if they were paged out; None for an unknown agent."""
        bank = self.detectors.get(agent_id)
        if bank is not None or agent_id not in self.paged_out or self.pager is None:
            return bank
        state = self.pager(agent_id)
        self.paged_out.discard(agent_id)
        if state is None:
            return None
        bank = self.detectors[agent_id] = AgentDetectors.from_state(state, self.settings)
        bank.behaviour.model = self.behaviour_model
        return bank

    def page_out(self, agent_id: str) -> None:
        """Drop the agent's detectors from memory (their state is on disk, where `pager` reads it)."""
        if self.detectors.pop(agent_id, None) is not None:
            self.paged_out.add(agent_id)

    def _asks_for_access(self, finding: Finding, ref: AgentRef) -> bool:
        rules = self.policy.access_requests
        return (finding.detector == "data_access" and finding.kind in rules.kinds and bool(finding.subject)
                and ref.environment in rules.environments)

    def _request_access(self, finding: Finding, ref: AgentRef, ladder: AgentLadder,
                        now_s: float) -> list[Decision]:
        """Hold the agent's calls to this one resource (or model) until a human answers (a denied one stays
        blocked)."""
        scope = _scope(finding.subject)
        if scope in ladder.scoped:
            return []  # already waiting for an answer, or denied
        actor = f"policy:access-requests@{self.policy.version}"
        request, _ = self.access.open(ref.id, finding.subject, now_s, finding.reason)
        self.audit.append("approval", ref, actor, f"access to {finding.subject} requested: {finding.reason}",
                          finding.time_s, finding.evidence, self.policy.version,
                          {"kind": "access", "request_id": request.id, "resource": finding.subject,
                           "status": request.status})
        decision = ladder.scoped_decision(Action.REQUIRE_APPROVAL, scope,
                                          f"access to {finding.subject} waits for a human (request {request.id})",
                                          actor, now_s, command=f"access_request:{request.id}")
        return [self._record_decision(decision, ref, finding.evidence)]

    def egress_request(self, agent_id: str, resource: str, summary: str, now_s: float) -> AccessRequest | None:
        """A write to an external host, held by the agent's guard at its start (issue 20): None when the host
        is in the agent's profile; else its access request (opened, with its scoped decision, if new)."""
        bank = self.detectors.get(agent_id)
        if bank is not None and resource in bank.data_access.profile and bank.data_access.granted.get(
                resource, float("inf")) > now_s:
            return None
        finding = Finding(agent_id, "data_access", "egress_outside_profile", 1.0, Severity.WARNING, 1.0, 0.0,
                          "writes", f"{summary}: a write to {resource}, outside its profile", now_s,
                          subject=resource)
        self._request_access(finding, self.agents.get(agent_id, AgentRef(id=agent_id)), self._ladder(agent_id),
                             now_s)
        return next((r for r in reversed(self.access.of_agent(agent_id)) if r.resource == resource), None)

    def model_request(self, agent_id: str, model: str, now_s: float) -> AccessRequest | None:
        """A first call to a model, asked about by the agent's guard at its start (`spanwarden.model_gate`):
        None when it may go; else the model's access request (opened, with its finding and scoped decision, if
        new; a denied one is returned as it stands)."""
        ref = self.agents.get(agent_id)
        rules = self.policy.access_requests
        if (not model or ref is None or not rules.models or ref.environment not in rules.environments
                or agent_id == UNKNOWN_AGENT or is_untrusted(agent_id)):
            return None
        resource = model_gate.resource(model)
        ladder = self._ladder(agent_id)
        if _scope(resource) not in ladder.scoped:
            bank = self.bank(agent_id)
            finding = model_gate.judge(bank, model, self.prices, now_s) if bank is not None else None
            if finding is None:
                return None
            self.on_finding(finding)
            self.audit.append("finding", ref, f"detector:{finding.detector}", finding.reason, now_s, (),
                              self.policy.version, finding.to_dict())
            self._request_access(finding, ref, ladder, now_s)
        return next((r for r in reversed(self.access.of_agent(agent_id)) if r.resource == resource), None)

    @property
    def prices(self) -> PriceTable:
        if self._prices is None:
            self._prices = PriceTable.load()
        return self._prices

    def answer_access(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
                      for_s: float | None = None) -> Decision:
        """A human's answer: approved, the resource joins the agent's profile (for `for_s`, or for good) and
        its calls go; denied, it leaves the profile and stays blocked until a human lifts the scope."""
        request = self.access.answer(request_id, approve, actor, now_s, reason, for_s)
        ref = self.agents.get(request.agent_id, AgentRef(id=request.agent_id))
        bank = self.bank(request.agent_id)
        if bank is not None and model_gate.is_model(request.resource):
            model = request.resource[len(model_gate.PREFIX):]
            if approve:
                bank.cost.price.accept(model, request.until_s)
            else:
                bank.cost.price.refuse(model)
        elif bank is not None:
            if approve:
                bank.data_access.allow(request.resource, now_s, request.until_s)
            else:
                bank.data_access.profile.pop(request.resource, None)
        self.audit.append("approval", ref, f"human:{actor}", f"access to {request.resource} {request.status}: "
                          f"{reason}", now_s, (), self.policy.version,
                          {"kind": "access", "request_id": request.id, "resource": request.resource,
                           "status": request.status, "until_s": request.until_s})
        decision = self._ladder(request.agent_id).scoped_decision(
            Action.ALLOW if approve else Action.HALT, _scope(request.resource),
            f"access to {request.resource} {request.status} by {actor}: {reason}", f"human:{actor}", now_s,
            command=f"access_request:{request.id}")
        return self._record_decision(decision, ref)

    def _collect(self, bank: AgentDetectors, t: float) -> None:
        """Move an agent's normal minute vectors to the fleet reservoir; refit the shared model on schedule."""
        for vector in bank.behaviour.normal_vectors:
            self.reservoir.offer(vector)
        bank.behaviour.normal_vectors.clear()
        if t >= self.next_fit_s and len(self.reservoir.items) >= REFIT_MIN_VECTORS:
            self.next_fit_s = t + REFIT_EVERY_S
            self.refitter.submit(np.array(self.reservoir.items), self.seed)
            fitted = self.refitter.ready()
            if fitted is not None:
                self._use_model(fitted)

    def _use_model(self, model: IsolationModel) -> None:
        self.behaviour_model = model
        for bank in self.detectors.values():
            bank.behaviour.model = model

    def _warmed_cost_histories(self, team: str) -> list[WindowTotals]:
        return [bank.cost.totals for agent_id, bank in self.detectors.items()
                if bank.cost.warmed_up() and agent_id != UNKNOWN_AGENT
                and (team == FLEET or self.agents.get(agent_id, AgentRef()).team == team)]

    def command(self, agent_id: str, action: Action, reason: str, actor: str, now_s: float,
                expires_s: float | None = None, throttle_per_s: float | None = None,
                selected_by: dict[str, str] | None = None, calls: str = "") -> Decision:
        """A human's command, for all the agent's calls or (`calls`: "tool:<pattern>"/"model:<pattern>")
        some of them; audited as a command and as the decision it makes."""
        ref = self.agents.get(agent_id, AgentRef(id=agent_id))
        self.audit.append("command", ref, f"human:{actor}", reason, now_s, (), self.policy.version,
                          {"command": action.value, "expires_s": expires_s, "throttle_per_s": throttle_per_s,
                           "selected_by": selected_by or {"agent": agent_id}, "calls": calls or "all"})
        decision = self._ladder(agent_id).command(action, reason, actor, now_s, expires_s, throttle_per_s,
                                                  self.policy.human_override_s, calls)
        return self._record_decision(decision, ref)

    def set_policy(self, policy: Policy, actor: str, now_s: float) -> None:
        """Put a new policy in force (audited), keeping every baseline and decision."""
        old = self.policy.version
        self.policy = policy
        self.settings = detector_settings_for(policy, self.settings)
        self.team_budgets.config = _team_budget_config(policy)
        for bank in self.detectors.values():
            bank.apply_settings(self.settings)
        self.dirty.update(self.detectors)
        self.audit.append("config_change", AgentRef(), actor, f"policy {old} replaced by {policy.version}", now_s,
                          (), policy.version, {"outcome": "applied", "from": old, "to": policy.version})

    def scoped(self, agent_id: str) -> list[Decision]:
        """The agent's decisions for some of its calls (by tool or model)."""
        ladder = self.ladders.get(agent_id)
        return list(ladder.scoped.values()) if ladder else []

    def decision(self, agent_id: str) -> Decision:
        ladder = self.ladders.get(agent_id)
        return ladder.current if ladder else allow(agent_id)

    def _ladder(self, agent_id: str) -> AgentLadder:
        self.dirty.add(agent_id)  # asked for to change it (a command, an answer, a restored decision)
        ladder = self.ladders.get(agent_id)
        if ladder is None:
            ladder = self.ladders[agent_id] = AgentLadder(agent_id)
        return ladder

    def _agent_ref(self, record: SpanRecord) -> AgentRef:
        ref = self.agents.get(record.agent_id)
        if ref is None or (ref.owner, ref.team, ref.environment, ref.version) != (
            record.owner, record.team, record.environment, record.agent_version
        ):
            ref = AgentRef(record.agent_id, record.owner, record.team, record.environment, record.agent_version)
            self.agents[record.agent_id] = ref
        return ref

    def _record_decision(self, decision: Decision, ref: AgentRef, evidence: tuple[str, ...] = ()) -> Decision:
        self.audit.append("decision", ref, decision.decided_by, decision.reason, decision.issued_s, evidence,
                          self.policy.version, decision.to_dict())
        self.on_decision(decision)
        return decision

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "records_seen": self.records_seen,
            "detectors": {a: d.to_state() for a, d in self.detectors.items()},
            "ladders": {a: ladder.to_state() for a, ladder in self.ladders.items()},
            "agents": {a: [r.owner, r.team, r.environment, r.version] for a, r in self.agents.items()},
            "team_budgets": self.team_budgets.to_state(),
            "access": self.access.to_state(),
            "arrivals": self.arrivals.to_state(),
            "behaviour": {"reservoir": self.reservoir.to_state(), "next_fit_s": self.next_fit_s,
                          "model": self.behaviour_model.to_state() if self.behaviour_model else None},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"pipeline state version {state.get('version')!r} is not {STATE_VERSION}")
        self.records_seen = int(state["records_seen"])
        self.detectors = {a: AgentDetectors.from_state(s, self.settings) for a, s in state["detectors"].items()}
        self.ladders = {a: AgentLadder.from_state(a, s) for a, s in state["ladders"].items()}
        self.agents = {a: AgentRef(a, *v) for a, v in state["agents"].items()}
        self.team_budgets.load_state(state["team_budgets"])
        self.access.load_state(state.get("access", {}))
        self.arrivals.load_state(state.get("arrivals", {}))
        behaviour = state["behaviour"]
        self.reservoir.load_state(behaviour["reservoir"])
        self.next_fit_s = float(behaviour["next_fit_s"])
        if behaviour["model"] is not None:
            self._use_model(IsolationModel.from_state(behaviour["model"]))

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        """One agent's baselines, ladder and identity: what a partitioned runtime keeps per key."""
        ref = self.agents.get(agent_id, AgentRef(id=agent_id))
        bank, ladder = self.detectors.get(agent_id), self.ladders.get(agent_id)
        return {"version": STATE_VERSION, "detectors": bank.to_state() if bank else None,
                "ladder": ladder.to_state() if ladder else None,
                "agent": [ref.owner, ref.team, ref.environment, ref.version],
                "access": [r.to_dict() for r in self.access.of_agent(agent_id)],
                "arrivals": self.arrivals.agent_state(agent_id)}

    def load_agent(self, agent_id: str, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"agent state version {state.get('version')!r} is not {STATE_VERSION}")
        if state["detectors"] is not None:
            self.detectors[agent_id] = AgentDetectors.from_state(state["detectors"], self.settings)
        if state["ladder"] is not None:
            self.ladders[agent_id] = AgentLadder.from_state(agent_id, state["ladder"])
        self.agents[agent_id] = AgentRef(agent_id, *state["agent"])
        self.access.forget_agent(agent_id)
        self.access.requests.update({d["id"]: AccessRequest(**d) for d in state.get("access", [])})
        arrivals = state.get("arrivals") or {}
        self.arrivals.load_agent(agent_id, arrivals.get("pending", []), arrivals.get("now"))

    def forget_agent(self, agent_id: str) -> None:
        """Drop an agent from memory (its partition moved to another worker)."""
        for table in (self.detectors, self.ladders, self.agents):
            table.pop(agent_id, None)
        self.access.forget_agent(agent_id)
        self.arrivals.forget_agent(agent_id)
        self.paged_out.discard(agent_id)

    def restore_decision(self, decision: Decision) -> None:
        """Reinstate a decision newer than the snapshot (recovered from the audit log after a crash)."""
        self._ladder(decision.agent_id).restore_decision(decision)


def _scope(resource: str) -> str:
    """The scope of the decisions that hold an agent's calls to a resource it asked for: a model's calls by
    the model's name, any other resource's by the resource."""
    return resource if model_gate.is_model(resource) else f"resource:{resource}"
