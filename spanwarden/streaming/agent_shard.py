"""The pipeline for the agents of the partitions one worker holds.

Each agent's baselines, ladder and input positions live in a Faust table (the `states` mapping here); the
shard loads an agent on first use, keeps the most recently used ones in memory, and after each input
returns the agent's new state for the caller to write back once the outputs are delivered. Inputs at or
before an agent's stored position are skipped, so a batch replayed after a crash or a rebalance is not
learned twice and makes no second decision."""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.agent_detectors import AgentDetectors, DetectorSettings
from spanwarden.detectors.finding import Finding
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.detectors.pinned_profile import PinnedProfile
from spanwarden.detectors.team_budget import TeamBudgetConfig
from spanwarden.detectors.window_totals import WindowTotals
from spanwarden.enforcers.audit_log import AgentRef, AuditEntry
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.event_time import TimeBounds
from spanwarden.pipeline import Pipeline
from spanwarden.streaming import egress_route, profile_pin, profile_route
from spanwarden.streaming.keyed_audit import KeyedAuditBuffer
from spanwarden.streaming.record_batch import SourceRecords
from spanwarden.streaming.shard_leases import ShardLeases
from spanwarden.streaming.team_stage import apply_finding, config_of, team_spend

log = logging.getLogger(__name__)
COMMANDS_REMEMBERED = 64
STATE_FORMAT = 1


@dataclass
class ShardOutput:
    """What one agent's input produced: audit entries, findings, decision messages and its new state."""

    agent_id: str
    audit: list[AuditEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    state: bytes = b""
    applied: list[SpanRecord] = field(default_factory=list)  # the records learned this time (for metrics)
    skipped_records: int = 0  # already applied (a replay)
    poisoned_records: int = 0  # passed over: they broke the pipeline
    identity: list[str] | None = None  # [owner, team, environment, version] when new or changed
    team_spend: dict[str, list[SourceRecords]] = field(default_factory=dict)  # for the team stage, by team


class AgentShard:
    def __init__(self, policy: Policy, states: Mapping[str, bytes],
                 settings: DetectorSettings | None = None, max_in_memory: int = 20_000,
                 time_bounds: TimeBounds | None = None,
                 fleet_prior: Callable[[str], WindowTotals | None] | None = None) -> None:
        self.states = states
        self.fleet_prior = fleet_prior  # peers' pooled spend for a new agent, from every worker (fleet_priors.py)
        self.audit = KeyedAuditBuffer()
        self._findings: list[Finding] = []
        self.pipeline = Pipeline(policy, self.audit, settings, on_finding=self._findings.append,
                                 fleet_learning=False, time_bounds=time_bounds)
        self.max_in_memory = max_in_memory
        self.leases = ShardLeases()
        self.positions: dict[str, dict[str, list[int]]] = {}
        self.commands_seen: dict[str, deque[str]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.corrupt_states = 0
        self._at: int | None = None  # the source being applied, to name it if it fails

    def process(self, agent_id: str, sources: list[SourceRecords]) -> ShardOutput:
        """Score and learn one agent's records, skipping sources already applied.

        A source whose records break the pipeline (a poison message) is logged and passed over: the agent is
        reloaded from its saved state (the state before this round) and the round replayed without it."""
        poisoned: set[int] = set()
        while True:
            try:
                return self._process(agent_id, sources, poisoned)
            except Exception:
                if self._at is None or self._at in poisoned:
                    raise
                source = sources[self._at]
                log.exception("passed over %d records of agent %r from %d@%d (part %d): they broke the pipeline",
                              len(source.records), agent_id, source.offset, source.partition, source.part)
                poisoned.add(self._at)
                self.audit.drain()
                self._findings.clear()
                self._forget(agent_id)

    def _process(self, agent_id: str, sources: list[SourceRecords], poisoned: set[int]) -> ShardOutput:
        self._ensure(agent_id)
        out = ShardOutput(agent_id)
        known = self.pipeline.agents.get(agent_id)
        positions = self.positions[agent_id]
        self._at = None
        counted: list[SourceRecords] = []  # what the team stage adds to the team's spend (team budgets set)
        teams_on = config_of(self.pipeline.policy) != TeamBudgetConfig()
        for index, source in enumerate(sources):
            key = str(source.partition)
            if list(source.position) <= positions.get(key, [-1, -1]):
                out.skipped_records += len(source.records)
                continue
            if index in poisoned:
                out.poisoned_records += len(source.records)
                positions[key] = list(source.position)
                continue
            self._at = index
            records = [r for r in source.records if r.agent_id == agent_id]
            if records and self.fleet_prior is not None and agent_id not in self.pipeline.detectors:
                self._new_bank(agent_id, records[0].team)
            if len(records) != len(source.records):
                log.error("dropped %d records filed under agent %r but naming another agent",
                          len(source.records) - len(records), agent_id)
            self.audit.start(f"{agent_id}/{source.partition}/{source.offset}/{source.part}")
            for decision in self.pipeline.process(records):
                out.decisions.append(self._message(decision, None))
            out.applied.extend(records)
            if teams_on:
                counted.append(source._replace(records=records))
            self.leases.observe(records)  # each agent's call sizes, for its guard's estimates
            positions[key] = list(source.position)
        self._at = None
        out.team_spend = team_spend(counted)
        ref = self.pipeline.agents.get(agent_id)
        if ref is not None and ref != known:  # for the fleet directory (team and environment commands)
            out.identity = [ref.owner, ref.team, ref.environment, ref.version]
        return self._finish(out)

    def command(self, agent_id: str, command: dict[str, Any]) -> ShardOutput:
        """Apply an on-call command (once per command id), or answer a guard's lease request."""
        self._ensure(agent_id)
        out = ShardOutput(agent_id)
        seen = self.commands_seen[agent_id]
        command_id = str(command["id"])
        if command.get("type") == "lease":  # answered again when repeated (the book remembers its answers)
            return self._lease(agent_id, command, out)
        if command.get("type") == "profile":  # a read for the gateway: the agent's learned profile
            out.decisions.append({**self._message(self.pipeline.decision(agent_id), command_id),
                                  "reply": profile_route.worker_part(self.pipeline, agent_id)})
            return self._finish(out)
        if command.get("type") in ("egress", "model"):  # the guard asks before a write out, a first model call
            self.audit.start(f"{agent_id}/command/{command_id}")  # a replay audits under the same keys
            reply = egress_route.answer(self.pipeline, agent_id, command)
            out.decisions.append({**self._message(self.pipeline.decision(agent_id), command_id), "reply": reply})
            return self._finish(out)
        if command.get("type") == "pin":  # a reviewed profile (`profile_pin.py`): pinned once, answered each time
            if command_id not in seen:
                self.audit.start(f"{agent_id}/command/{command_id}")
                profile_pin.apply(self.pipeline, agent_id, command)
                seen.append(command_id)
            pinned = self.pipeline.pinned.get(agent_id)
            out.decisions.append({**self._message(self.pipeline.decision(agent_id), command_id),
                                  "reply": {"pinned": pinned.to_dict() if pinned else None}})
            return self._finish(out)
        if command_id in seen:
            return self._finish(out)
        if command.get("type") == "finding":  # the team stage's: the agent's team is over its budget
            self.audit.start(f"{agent_id}/command/{command_id}")
            finding = Finding.from_dict(command["finding"])
            made = apply_finding(self.pipeline, finding, finding.time_s)
            seen.append(command_id)
            if made is not None:
                out.decisions.append(self._message(made, command_id))
            return self._finish(out)
        self.audit.start(f"{agent_id}/command/{command_id}")
        if command.get("type") == "access_answer":  # a human's answer to one of this agent's access requests
            decision = self.pipeline.answer_access(
                str(command["request_id"]), bool(command["approve"]), str(command["actor"]),
                str(command["reason"]), float(command["now_s"]), _optional_float(command.get("for_s")))
        else:
            decision = self.pipeline.command(
                agent_id, Action(command["action"]), str(command["reason"]), str(command["actor"]),
                float(command["now_s"]), _optional_float(command.get("expires_s")),
                _optional_float(command.get("throttle_per_s")), command.get("selected_by"),
                str(command.get("calls", "")))
        seen.append(command_id)
        out.decisions.append(self._message(decision, command_id))
        return self._finish(out)

    def _new_bank(self, agent_id: str, team: str) -> None:
        """A new agent's detectors, judged on its peers' spend while it learns its own (what the pipeline
        does with its own peers when it sees the whole fleet)."""
        assert self.fleet_prior is not None
        bank = AgentDetectors(agent_id, self.pipeline.settings, self.fleet_prior(team))
        bank.behaviour.model = self.pipeline.behaviour_model
        self.pipeline.detectors[agent_id] = bank

    def _lease(self, agent_id: str, command: dict[str, Any], out: ShardOutput) -> ShardOutput:
        bank = self.pipeline.detectors.get(agent_id)
        answer = self.leases.grant(agent_id, command, self.pipeline.policy.budgets.agent_usd_per_hour,
                                   bank.cost.hour.sum if bank is not None else 0.0)
        out.decisions.append({**self._message(self.pipeline.decision(agent_id), str(command["id"])),
                              "reply": answer})
        return self._finish(out)

    def use_behaviour_model(self, model: IsolationModel) -> None:
        """The fleet's behaviour model from the model topic (`fleet_model.py`), for every agent here."""
        self.pipeline.behaviour_model = model
        for bank in self.pipeline.detectors.values():
            bank.behaviour.model = model

    def set_policy(self, policy: Policy, actor: str, now_s: float) -> None:
        """Put the policy from the policy topic in force, keeping every baseline. The gateway audits the
        reload (it is the one that validated and published it), so the pipeline's entry is not sent."""
        self.pipeline.set_policy(policy, actor, now_s)
        self.audit.drain()

    def agent_ref(self, agent_id: str) -> AgentRef:
        return self.pipeline.agents.get(agent_id, AgentRef(agent_id))

    def forget_all(self) -> None:
        """Drop every agent from memory (after a rebalance the table is the truth)."""
        for agent_id in list(self._recent):
            self._forget(agent_id)

    def _message(self, decision: Decision, command_id: str | None) -> dict[str, Any]:
        agent_id = decision.agent_id
        return {"decision": decision.to_dict(), "current": self.pipeline.decision(agent_id).to_dict(),
                "scoped": [d.to_dict() for d in self.pipeline.scoped(agent_id)], "command_id": command_id,
                "policy_version": self.pipeline.policy.version}  # the policy this worker had in force

    def _finish(self, out: ShardOutput) -> ShardOutput:
        out.audit = self.audit.drain()
        out.findings, self._findings[:] = list(self._findings), []
        out.state = self.state_bytes(out.agent_id)
        return out

    def state_bytes(self, agent_id: str) -> bytes:
        pinned = self.pipeline.pinned.get(agent_id)
        return orjson.dumps({"format": STATE_FORMAT, "pipeline": self.pipeline.agent_state(agent_id),
                             "positions": self.positions[agent_id],
                             "commands": list(self.commands_seen[agent_id]),
                             "leases": self.leases.agent_state(agent_id),
                             "pinned": pinned.to_dict() if pinned else None})

    def _ensure(self, agent_id: str) -> None:
        if agent_id in self._recent:
            self._recent.move_to_end(agent_id)
            return
        self.positions[agent_id], self.commands_seen[agent_id] = {}, deque(maxlen=COMMANDS_REMEMBERED)
        raw = self.states.get(agent_id)
        if raw:
            try:
                state = orjson.loads(raw)
                if state.get("format") != STATE_FORMAT:
                    raise ValueError(f"state format {state.get('format')!r}, expected {STATE_FORMAT}")
                self.pipeline.load_agent(agent_id, state["pipeline"])
                loaded = self.pipeline.detectors.get(agent_id)
                if loaded is not None:  # the fleet's behaviour model, as a new agent's detectors get it
                    loaded.behaviour.model = self.pipeline.behaviour_model
                self.positions[agent_id] = {str(k): [int(v[0]), int(v[1])] for k, v in state["positions"].items()}
                self.commands_seen[agent_id].extend(str(c) for c in state["commands"])
                if state.get("leases"):
                    self.leases.load_agent(agent_id, state["leases"])
                if state.get("pinned"):
                    self.pipeline.pinned[agent_id] = PinnedProfile.from_dict(state["pinned"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                self.corrupt_states += 1
                self.pipeline.forget_agent(agent_id)
                self.leases.forget_agent(agent_id)
                log.error("state of agent %r is unreadable (%s); it starts learning again", agent_id, exc)
        self._recent[agent_id] = None
        while len(self._recent) > self.max_in_memory:
            self._forget(next(iter(self._recent)))

    def forget(self, agent_id: str) -> None:
        """Drop one agent from memory; its next input reloads the saved state."""
        self._forget(agent_id)

    def _forget(self, agent_id: str) -> None:
        self._recent.pop(agent_id, None)
        self.pipeline.forget_agent(agent_id)
        self.pipeline.pinned.pop(agent_id, None)
        self.leases.forget_agent(agent_id)
        self.positions.pop(agent_id, None)
        self.commands_seen.pop(agent_id, None)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
