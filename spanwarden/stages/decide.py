"""Decide: each agent's ladder turns findings into decisions under the policy (warn → throttle → halt, per
environment), takes humans' commands, and lapses decisions on the service clock; every decision is audited
and announced."""

from __future__ import annotations

from typing import Any

from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Action, Decision, allow
from spanwarden.enforcers.ladder import AgentLadder
from spanwarden.enforcers.policy import RuleContext
from spanwarden.stages.shared import Shared


class Decide:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.ladders: dict[str, AgentLadder] = {}

    def ladder(self, agent_id: str) -> AgentLadder:
        """The agent's ladder (made if new), asked for to change it: the agent's state is marked changed."""
        self.shared.dirty.add(agent_id)
        ladder = self.ladders.get(agent_id)
        if ladder is None:
            ladder = self.ladders[agent_id] = AgentLadder(agent_id)
        return ladder

    def record(self, decision: Decision, ref: AgentRef, evidence: tuple[str, ...] = ()) -> Decision:
        shared = self.shared
        shared.audit.append("decision", ref, decision.decided_by, decision.reason, decision.issued_s, evidence,
                            shared.policy.version, decision.to_dict())
        shared.on_decision(decision)
        return decision

    def lapse(self, agent_id: str, ref: AgentRef, now_s: float) -> Decision | None:
        """The agent's decision that expired by `now_s`, recorded; None if nothing lapsed."""
        ladder = self.ladder(agent_id)
        if ladder.current.action is Action.ALLOW:
            return None  # nothing to lapse (the common case; `tick` says the same)
        lapsed = ladder.tick(now_s)
        return self.record(lapsed, ref) if lapsed is not None else None

    def lapse_all(self, now_s: float) -> list[Decision]:
        """Every agent's decision that expired by `now_s`, even of agents that send nothing."""
        out = []
        for agent_id, ladder in self.ladders.items():
            lapsed = ladder.tick(now_s) if ladder.current.expires_s is not None else None
            if lapsed is not None:
                self.shared.dirty.add(agent_id)
                out.append(self.record(lapsed, self.shared.ref(agent_id)))
        return out

    def on_finding(self, finding: Finding, ref: AgentRef, now_s: float, model: str = "",
                   tool: str = "") -> Decision | None:
        """The ladder's decision on a finding (of a call with `model`/`tool`, which rules may name), if any."""
        context = RuleContext(ref.environment, ref.team, model, tool)
        decision = self.ladder(ref.id).on_finding(finding, context, self.shared.policy, now_s)
        return self.record(decision, ref, finding.evidence) if decision is not None else None

    def command(self, agent_id: str, action: Action, reason: str, actor: str, now_s: float,
                expires_s: float | None = None, throttle_per_s: float | None = None,
                selected_by: dict[str, str] | None = None, calls: str = "") -> Decision:
        """A human's command, for all the agent's calls or (`calls`: "tool:<pattern>"/"model:<pattern>")
        some of them; audited as a command and as the decision it makes."""
        shared = self.shared
        ref = shared.ref(agent_id)
        shared.audit.append("command", ref, f"human:{actor}", reason, now_s, (), shared.policy.version,
                            {"command": action.value, "expires_s": expires_s, "throttle_per_s": throttle_per_s,
                             "selected_by": selected_by or {"agent": agent_id}, "calls": calls or "all"})
        decision = self.ladder(agent_id).command(action, reason, actor, now_s, expires_s, throttle_per_s,
                                                 shared.policy.human_override_s, calls)
        return self.record(decision, ref)

    def current(self, agent_id: str) -> Decision:
        ladder = self.ladders.get(agent_id)
        return ladder.current if ladder else allow(agent_id)

    def scoped(self, agent_id: str) -> list[Decision]:
        ladder = self.ladders.get(agent_id)
        return list(ladder.scoped.values()) if ladder else []

    def restore(self, decision: Decision) -> None:
        """Reinstate a decision newer than the snapshot (recovered from the audit log after a crash)."""
        self.ladder(decision.agent_id).restore_decision(decision)

    def to_state(self) -> dict[str, Any]:
        return {a: ladder.to_state() for a, ladder in self.ladders.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.ladders = {a: AgentLadder.from_state(a, s) for a, s in state.items()}
