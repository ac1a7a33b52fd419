"""The pipeline both runtimes share: records → event time held to the service clock and put in order →
detect → decide → request access (`spanwarden.stages`), fleet learning beside them, with every finding and
decision written to the audit sink. No network, no clock of its own (time comes with the records' receive
times and `advance`): the embedded service and the Faust worker only move data in and out of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from spanwarden.audit_sink import AuditSink
from spanwarden.collector import agent_identity
from spanwarden.collector.ingest_auth import is_untrusted
from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord
from spanwarden.detectors.agent_detectors import AgentDetectors, DetectorSettings
from spanwarden.detectors.finding import Finding
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.detectors.peer_prior import PeerPriors
from spanwarden.detectors.pinned_profile import PinnedProfile
from spanwarden.detectors.team_budget import TeamBudgets
from spanwarden.detectors.window_totals import WindowTotals
from spanwarden.enforcers.access_requests import AccessBook, AccessRequest
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.ladder import AgentLadder
from spanwarden.enforcers.policy import Policy
from spanwarden.event_time import Arrivals, TimeBounds
from spanwarden.model_refit import Refitter, Reservoir
from spanwarden.stages.access import Access
from spanwarden.stages.decide import Decide
from spanwarden.stages.detect import Detect
from spanwarden.stages.fleet import REFIT_EVERY_S, REFIT_MIN_VECTORS, Fleet
from spanwarden.stages.shared import Shared

STATE_VERSION = 1
__all__ = ["REFIT_EVERY_S", "REFIT_MIN_VECTORS", "STATE_VERSION", "Pipeline", "detector_settings_for"]


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


class Pipeline:
    """Per-agent detection and enforcement. `on_decision` is called with each new decision.

    Peer priors, team budgets and the behaviour model learn across agents; a Faust worker sees only its
    partitions' agents, so it runs with `fleet_learning` off rather than learn from a partial fleet, and
    without access requests (`access_requests`) where no one could answer them."""

    def __init__(self, policy: Policy, audit: AuditSink, settings: DetectorSettings | None = None,
                 on_decision: Callable[[Decision], None] | None = None,
                 on_finding: Callable[[Finding], None] | None = None, refitter: Refitter | None = None,
                 seed: int = 0, fleet_learning: bool = True, access_requests: bool = True,
                 time_bounds: TimeBounds | None = None, prices: PriceTable | None = None) -> None:
        self.shared = Shared(policy, audit, on_decision or (lambda d: None), on_finding or (lambda f: None))
        detector_settings = detector_settings_for(policy, settings)
        self.fleet = Fleet(self.shared, PeerPriors(detector_settings.cost_velocity.windows), fleet_learning,
                           refitter, seed)
        self.detect = Detect(detector_settings, lambda: self.fleet.behaviour_model)
        self.fleet.on_model = self.detect.use_model
        self.decide = Decide(self.shared)
        self.access_stage = Access(self.shared, self.detect, self.decide, access_requests, prices)
        self.records_seen = 0
        # Records judged at most per call (None: all that are due); the service keeps each step short and
        # calls `judge_due` while `backlog()`.
        self.judge_limit: int | None = None
        # One process seeing the fleet shares one service clock; a partitioned worker keeps each agent's own,
        # so that its decisions depend on its records alone (and a replay decides the same).
        self.arrivals = Arrivals(time_bounds or TimeBounds(), shared=fleet_learning)

    # The flow of records.

    def process(self, records: Iterable[SpanRecord]) -> list[Decision]:
        """Take records in as they arrive; judge those now due (see `spanwarden.event_time`)."""
        self.fleet.poll()
        shared, arrivals = self.shared, self.arrivals
        arrived: set[str] | None = None if arrivals.shared else set()
        dirty, agents, banks = shared.dirty, shared.agents, self.detect.banks
        entries = []
        last = ""  # the previous record's agent: a run of one agent's records is seen to once
        ref: AgentRef | None = None
        for record in records:
            self.records_seen += 1
            agent_id = record.agent_id
            run = ref is None or agent_id != last
            if run:
                dirty.add(agent_id)
                ref = agents.get(agent_id)  # `_agent_ref`, inline: it runs for every record
                last = agent_id
            if (ref is None or ref.owner != record.owner or ref.team != record.team
                    or ref.environment != record.environment or ref.version != record.agent_version):
                ref = self._agent_ref(record)
            if run:
                if agent_id not in banks:
                    self.detect.bank_for(record, self._prior)  # known from its first span on, though judged later
                if arrived is not None:
                    arrived.add(agent_id)
            entries.append(arrivals.stamp(record))
        return self._judge(arrivals.settle(entries, arrived, self.judge_limit))

    def advance(self, now_s: float) -> list[Decision]:
        """The service clock reached `now_s`: judge the records now due, and lapse decisions that expired, even
        of agents that send nothing (a shared clock only: a partitioned worker moves on its agents' records)."""
        if not self.arrivals.shared:
            return []
        self.arrivals.advance(now_s)
        decisions = self._judge_due(None)
        decisions.extend(self.decide.lapse_all(now_s))
        return decisions

    def backlog(self) -> bool:
        """Due records are left (the judge limit held them back)."""
        return self.arrivals.shared and self.arrivals.has_due()

    def judge_due(self) -> list[Decision]:
        """Judge (up to the limit) the records due now."""
        return self._judge_due(None)

    def _judge_due(self, agents: set[str] | None) -> list[Decision]:
        return self._judge(self.arrivals.release(agents, self.judge_limit))

    def _judge(self, due: list[tuple[float, SpanRecord]]) -> list[Decision]:
        """Detect on each record in event-time order, decide at `now_s` (its decision time); the decisions made,
        in order. The agent's identity, detectors and ladder are looked up once per run of its records (a
        finding or a lapse, which tell others, ends the run: whoever they tell sees the stages as they are)."""
        decisions: list[Decision] = []
        shared, detect, decide, fleet = self.shared, self.detect, self.decide, self.fleet
        agents, ladders = shared.agents, decide.ladders
        last, fresh = "", False  # the previous record's agent, and whether what was looked up for it holds
        ref: AgentRef | None = None
        bank: AgentDetectors | None = None
        ladder: AgentLadder | None = None
        for now_s, record in due:
            agent_id = record.agent_id
            if ref is None or bank is None or ladder is None or not fresh or agent_id != last:
                ref = agents.get(agent_id) or self._agent_ref(record)
                bank = detect.banks.get(agent_id) or detect.bank_for(record, self._prior)
                ladder = ladders.get(agent_id)
                if ladder is None:
                    ladder = decide.ladder(agent_id)
                last, fresh = agent_id, True
            shared.dirty.add(agent_id)  # `decide.lapse`, inline: its ladder is asked for
            if ladder.current.action is not Action.ALLOW:
                lapsed = ladder.tick(now_s)
                if lapsed is not None:
                    decisions.append(decide.record(lapsed, ref))
                    fresh = False  # others were told: the agent is looked up again
            found = bank.observe(record)  # `detect.observe`, inline
            if detect.pinned:
                pinned = detect.pinned.get(agent_id)
                if pinned is not None:
                    found.extend(detect.drift(record, pinned))
            if fleet.enabled and fleet.team_budgets.active:  # `fleet.team_finding`, inline
                team_finding = fleet.team_budgets.observe(record)
                if team_finding is not None:
                    found.append(team_finding)
            if bank.behaviour.normal_vectors:
                fleet.collect(bank, record.time_s)
            if found:
                self._decide(record, ref, now_s, found, decisions)
                fresh = False
        return decisions

    def _decide(self, record: SpanRecord, ref: AgentRef, now_s: float, found: list[Finding],
                decisions: list[Decision]) -> None:
        """Audit a record's findings and decide on them; the decisions made go to `decisions`."""
        agent_id = record.agent_id
        for finding in found:
            self.shared.audit_finding(finding, ref, agent_identity.audited(record.agent_source))
            if agent_id == UNKNOWN_AGENT or is_untrusted(agent_id):
                continue  # nothing to enforce on: spans with no identity, or no token, come from anywhere
            if self.access_stage.asks_for(finding, ref):
                decisions.extend(self.access_stage.request(finding, ref, now_s))
                continue
            decision = self.decide.on_finding(finding, ref, now_s, record.model, record.tool_name)
            if decision is not None:
                decisions.append(decision)

    def _bank(self, record: SpanRecord) -> AgentDetectors:
        return self.detect.banks.get(record.agent_id) or self.detect.bank_for(record, self._prior)

    def _prior(self, record: SpanRecord) -> WindowTotals | None:
        return self.fleet.prior(record, self.detect.banks)

    def _agent_ref(self, record: SpanRecord) -> AgentRef:
        agents = self.shared.agents
        ref = agents.get(record.agent_id)
        if ref is None or (ref.owner, ref.team, ref.environment, ref.version) != (
            record.owner, record.team, record.environment, record.agent_version
        ):
            ref = AgentRef(record.agent_id, record.owner, record.team, record.environment, record.agent_version)
            agents[record.agent_id] = ref
        return ref

    # What the stages answer.

    def bank(self, agent_id: str) -> AgentDetectors | None:
        """The agent's detectors, paged back in from disk if they were paged out; None for an unknown agent."""
        return self.detect.bank(agent_id)

    def page_out(self, agent_id: str) -> None:
        """Drop the agent's detectors from memory (their state is on disk, where `pager` reads it)."""
        self.detect.page_out(agent_id)

    def egress_request(self, agent_id: str, resource: str, summary: str, now_s: float) -> AccessRequest | None:
        """A write to an external host, held by the agent's guard at its start (see `stages.access`)."""
        return self.access_stage.egress(agent_id, resource, summary, now_s)

    def model_request(self, agent_id: str, model: str, now_s: float) -> AccessRequest | None:
        """A first call to a model, asked about by the agent's guard at its start (see `stages.access`)."""
        return self.access_stage.model(agent_id, model, now_s)

    def answer_access(self, request_id: str, approve: bool, actor: str, reason: str, now_s: float,
                      for_s: float | None = None) -> Decision:
        """A human's answer to an access request (see `stages.access`)."""
        return self.access_stage.answer(request_id, approve, actor, reason, now_s, for_s)

    def command(self, agent_id: str, action: Action, reason: str, actor: str, now_s: float,
                expires_s: float | None = None, throttle_per_s: float | None = None,
                selected_by: dict[str, str] | None = None, calls: str = "") -> Decision:
        """A human's command, for all the agent's calls or (`calls`: "tool:<pattern>"/"model:<pattern>")
        some of them; audited as a command and as the decision it makes."""
        return self.decide.command(agent_id, action, reason, actor, now_s, expires_s, throttle_per_s,
                                   selected_by, calls)

    def set_policy(self, policy: Policy, actor: str, now_s: float) -> None:
        """Put a new policy in force (audited), keeping every baseline and decision."""
        old = self.shared.policy.version
        self.shared.policy = policy
        self.detect.configure(detector_settings_for(policy, self.detect.settings))
        self.fleet.configure(policy)
        self.shared.dirty.update(self.detect.banks)
        self.shared.audit.append("config_change", AgentRef(), actor,
                                 f"policy {old} replaced by {policy.version}", now_s, (), policy.version,
                                 {"outcome": "applied", "from": old, "to": policy.version})

    def scoped(self, agent_id: str) -> list[Decision]:
        """The agent's decisions for some of its calls (by tool, model or resource)."""
        return self.decide.scoped(agent_id)

    def decision(self, agent_id: str) -> Decision:
        return self.decide.current(agent_id)

    def restore_decision(self, decision: Decision) -> None:
        """Reinstate a decision newer than the snapshot (recovered from the audit log after a crash)."""
        self.decide.restore(decision)

    def apply_finding(self, finding: Finding, now_s: float) -> Decision | None:
        """A finding made elsewhere (a Kafka runtime's team stage) about one of this pipeline's agents: audited
        and put to the agent's ladder as its own findings are."""
        ref = self.shared.ref(finding.agent_id)
        self.shared.audit_finding(finding, ref)
        return self.decide.on_finding(finding, ref, now_s)

    def _use_model(self, model: IsolationModel) -> None:
        self.fleet.use_model(model)

    # State: each stage's own, in one document (or per agent, for a partitioned runtime).

    def to_state(self) -> dict[str, Any]:
        fleet = self.fleet.to_state()
        return {
            "version": STATE_VERSION,
            "records_seen": self.records_seen,
            "detectors": self.detect.to_state(),
            "ladders": self.decide.to_state(),
            "agents": {a: [r.owner, r.team, r.environment, r.version] for a, r in self.shared.agents.items()},
            "team_budgets": fleet["team_budgets"],
            "access": self.access_stage.to_state(),
            "arrivals": self.arrivals.to_state(),
            "behaviour": fleet["behaviour"],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"pipeline state version {state.get('version')!r} is not {STATE_VERSION}")
        self.records_seen = int(state["records_seen"])
        self.detect.load_state(state["detectors"])
        self.decide.load_state(state["ladders"])
        self.shared.agents = {a: AgentRef(a, *v) for a, v in state["agents"].items()}
        self.access_stage.load_state(state.get("access", {}))
        self.arrivals.load_state(state.get("arrivals", {}))
        self.fleet.load_state(state["team_budgets"], state["behaviour"])

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        """One agent's baselines, ladder and identity: what a partitioned runtime keeps per key."""
        ref = self.shared.ref(agent_id)
        bank, ladder = self.detect.banks.get(agent_id), self.decide.ladders.get(agent_id)
        return {"version": STATE_VERSION, "detectors": bank.to_state() if bank else None,
                "ladder": ladder.to_state() if ladder else None,
                "agent": [ref.owner, ref.team, ref.environment, ref.version],
                "access": [r.to_dict() for r in self.access.of_agent(agent_id)],
                "arrivals": self.arrivals.agent_state(agent_id)}

    def load_agent(self, agent_id: str, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"agent state version {state.get('version')!r} is not {STATE_VERSION}")
        if state["detectors"] is not None:
            self.detect.banks[agent_id] = AgentDetectors.from_state(state["detectors"], self.settings)
        if state["ladder"] is not None:
            self.decide.ladders[agent_id] = AgentLadder.from_state(agent_id, state["ladder"])
        self.shared.agents[agent_id] = AgentRef(agent_id, *state["agent"])
        self.access.forget_agent(agent_id)
        self.access.requests.update({d["id"]: AccessRequest(**d) for d in state.get("access", [])})
        arrivals = state.get("arrivals") or {}
        self.arrivals.load_agent(agent_id, arrivals.get("pending", []), arrivals.get("now"))

    def forget_agent(self, agent_id: str) -> None:
        """Drop an agent from memory (its partition moved to another worker)."""
        self.detect.forget(agent_id)
        self.decide.ladders.pop(agent_id, None)
        self.shared.agents.pop(agent_id, None)
        self.access.forget_agent(agent_id)
        self.arrivals.forget_agent(agent_id)

    # The stages' parts, by the names the runtimes, snapshots and tests read them by.

    @property
    def policy(self) -> Policy:
        return self.shared.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """The policy in force, replaced as it is (`set_policy` also reconfigures the detectors and audits)."""
        self.shared.policy = policy

    @property
    def audit(self) -> AuditSink:
        return self.shared.audit

    @audit.setter
    def audit(self, sink: AuditSink) -> None:
        self.shared.audit = sink

    @property
    def on_decision(self) -> Callable[[Decision], None]:
        return self.shared.on_decision

    @property
    def on_finding(self) -> Callable[[Finding], None]:
        return self.shared.on_finding

    @property
    def agents(self) -> dict[str, AgentRef]:
        return self.shared.agents

    @property
    def dirty(self) -> set[str]:
        """Agents whose state changed since the last snapshot took them (a snapshot swaps in a new set)."""
        return self.shared.dirty

    @dirty.setter
    def dirty(self, agents: set[str]) -> None:
        self.shared.dirty = agents

    @property
    def settings(self) -> DetectorSettings:
        return self.detect.settings

    @property
    def detectors(self) -> dict[str, AgentDetectors]:
        return self.detect.banks

    @property
    def paged_out(self) -> set[str]:
        return self.detect.paged_out

    @property
    def pager(self) -> Callable[[str], dict[str, Any] | None] | None:
        return self.detect.pager

    @pager.setter
    def pager(self, read: Callable[[str], dict[str, Any] | None] | None) -> None:
        self.detect.pager = read

    @property
    def pinned(self) -> dict[str, PinnedProfile]:
        return self.detect.pinned

    @pinned.setter
    def pinned(self, profiles: dict[str, PinnedProfile]) -> None:
        self.detect.pinned = profiles

    @property
    def ladders(self) -> dict[str, AgentLadder]:
        return self.decide.ladders

    @property
    def access(self) -> AccessBook:
        return self.access_stage.book

    @property
    def prices(self) -> PriceTable:
        return self.access_stage.prices

    @property
    def fleet_learning(self) -> bool:
        return self.fleet.enabled

    @property
    def access_requests(self) -> bool:
        return self.access_stage.enabled

    @property
    def priors(self) -> PeerPriors:
        return self.fleet.priors

    @property
    def team_budgets(self) -> TeamBudgets:
        return self.fleet.team_budgets

    @property
    def refitter(self) -> Refitter:
        return self.fleet.refitter

    @property
    def reservoir(self) -> Reservoir:
        return self.fleet.reservoir

    @property
    def behaviour_model(self) -> IsolationModel | None:
        return self.fleet.behaviour_model

    @behaviour_model.setter
    def behaviour_model(self, model: IsolationModel | None) -> None:
        self.fleet.behaviour_model = model

    @property
    def next_fit_s(self) -> float:
        return self.fleet.next_fit_s

    @next_fit_s.setter
    def next_fit_s(self, t: float) -> None:
        self.fleet.next_fit_s = t

    @property
    def on_normal_vectors(self) -> Callable[[list[list[float]], float], None]:
        return self.fleet.on_normal_vectors

    @on_normal_vectors.setter
    def on_normal_vectors(self, ship: Callable[[list[list[float]], float], None]) -> None:
        self.fleet.on_normal_vectors = ship
