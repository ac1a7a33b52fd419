"""The per-agent action ladder: findings move an agent up (allow → warn → throttle → halt) as the policy
says, persistence escalates one rung (never past the rule's `escalate_to`, at most throttle: only a rule whose
own action is halt, or a human, halts), and decisions lapse back to allow when their expiry passes with no
new supporting finding. A halt lapses only by a human's resume.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.decision import LADDER, Action, Decision, allow
from spanwarden.enforcers.policy import Policy, RuleContext


class AgentLadder:
    """One agent's enforcement state. Pure: time comes from findings and `tick`."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.current = allow(agent_id)
        self.recent: deque[float] = deque()  # times of rule-matching findings, for escalation
        self.human_until = float("-inf")  # policy decisions are capped at warn until then
        self.rule_last: dict[str, float] = {}  # when each rule last decided for this agent (cooldowns)
        self.scoped: dict[str, Decision] = {}  # a human's decisions for some of the agent's calls, by scope
        self.version = 0  # the newest version issued for this agent, agent-wide or scoped

    def on_finding(self, finding: Finding, context: RuleContext, policy: Policy,
                   now_s: float | None = None) -> Decision | None:
        """The new decision this finding leads to, or None when the current one stands. `now_s` is the
        service's time (decisions are issued and expire on it); without it, the finding's own time."""
        environment = context.environment
        rule = policy.rule_for(finding, context)
        if rule is None or rule.action is Action.ALLOW:
            return None
        t = finding.time_s if now_s is None else now_s
        self.recent.append(t)
        while self.recent and (self.recent[0] < t - policy.escalation.within_s or len(self.recent) > 64):
            self.recent.popleft()
        current = self.current if self.current.in_force(t) else allow(self.agent_id, t)
        action: Action = rule.action
        escalated = False
        if len(self.recent) >= policy.escalation.findings and current.action in LADDER:
            base = max(current.action.rank, action.rank)
            higher = [a for a in LADDER if base < a.rank <= rule.escalate_to.rank]
            if higher:
                action, escalated = higher[0], True
        ceiling = policy.ceiling(environment)
        overridden = t < self.human_until
        if overridden and Action.WARN.rank < ceiling.rank:
            ceiling = Action.WARN  # a human decided moments ago: the policy may only warn for a while
        if action.rank > ceiling.rank:
            action = ceiling
        if action.rank < current.action.rank or action is Action.ALLOW:
            return None
        expiry = policy.expiry(action)
        if action is current.action:
            # Same rung: refresh only when the decision is about to lapse, so a persisting anomaly keeps it
            # in force without a new version on every finding, and not within the rule's cooldown.
            if current.expires_s is None or expiry is None or current.expires_s - t > expiry / 2:
                return None
            if t - self.rule_last.get(rule.id, float("-inf")) < rule.cooldown_s:
                return None
        why = f"{finding.reason} [{finding.detector}/{finding.kind}, {finding.severity.label}]"
        if escalated:
            why = f"escalated: {len(self.recent)} findings within {policy.escalation.within_s:.0f}s; {why}"
        if action is not rule.action and not escalated:
            where = "after a human's command" if overridden else f"in environment {environment or '(none)'}"
            why = f"capped at {action.value} {where}; {why}"
        self.rule_last[rule.id] = t
        if len(self.rule_last) > 64:
            self.rule_last = {k: v for k, v in self.rule_last.items() if v >= t - 86_400}
        return self._issue(
            action, why, f"policy:{rule.id}@{policy.version}", t, None if expiry is None else t + expiry,
            policy.throttle_per_s if action is Action.THROTTLE else None,
            (f"{finding.detector}/{finding.kind}",),
        )

    def tick(self, now_s: float) -> Decision | None:
        """Lapse an expired decision back to allow (audited like any other decision)."""
        current = self.current
        if current.action is Action.ALLOW or current.in_force(now_s):
            return None
        return self._issue(Action.ALLOW, f"{current.action.value} expired with no new findings",
                           current.decided_by, now_s, None, None, ())

    def command(self, action: Action, reason: str, actor: str, now_s: float, expires_s: float | None = None,
                throttle_per_s: float | None = None, override_s: float = 0.0, scope: str = "") -> Decision:
        """A human's kill, throttle or resume: applied as given, whatever the ladder says; for `override_s`
        after it, the policy may only warn (so a resume is not undone by the very findings it overrode). With
        a `scope`, it applies to those calls only and leaves the agent-wide decision as it is."""
        if scope:
            return self.scoped_decision(action, scope, reason, f"human:{actor}", now_s, expires_s, throttle_per_s,
                                        action.value)
        self.recent.clear()
        self.human_until = now_s + override_s
        return self._issue(action, reason, f"human:{actor}", now_s, expires_s, throttle_per_s, (),
                           command=action.value)

    def scoped_decision(self, action: Action, scope: str, reason: str, decided_by: str, now_s: float,
                        expires_s: float | None = None, throttle_per_s: float | None = None,
                        command: str = "") -> Decision:
        """A decision for some of the agent's calls (a tool, a model, a resource), beside the agent-wide one;
        `allow` lifts the scope."""
        self.version = max(self.version, self.current.version) + 1
        decision = Decision(self.agent_id, action, reason, decided_by, now_s, self.version, expires_s,
                            throttle_per_s, (), command, scope)
        if action is Action.ALLOW:
            self.scoped.pop(scope, None)
        else:
            self.scoped[scope] = decision
        return decision

    def _issue(self, action: Action, reason: str, decided_by: str, t: float, expires_s: float | None,
               throttle_per_s: float | None, findings: tuple[str, ...], command: str = "") -> Decision:
        self.version = max(self.version, self.current.version) + 1
        self.current = Decision(
            agent_id=self.agent_id, action=action, reason=reason, decided_by=decided_by, issued_s=t,
            version=self.version, expires_s=expires_s, throttle_per_s=throttle_per_s,
            findings=findings, command=command,
        )
        return self.current

    def to_state(self) -> dict[str, Any]:
        return {"current": self.current.to_dict(), "recent": list(self.recent), "human_until": (
            self.human_until if self.human_until != float("-inf") else None),  # strict JSON has no -inf
                "rule_last": self.rule_last, "version": self.version,
                "scoped": [d.to_dict() for d in self.scoped.values()]}

    @classmethod
    def from_state(cls, agent_id: str, state: dict[str, Any]) -> AgentLadder:
        ladder = cls(agent_id)
        ladder.current = Decision.from_dict(state["current"])
        ladder.recent = deque(float(t) for t in state["recent"])
        human_until = state.get("human_until")
        ladder.human_until = float("-inf") if human_until is None else float(human_until)
        ladder.rule_last = {k: float(v) for k, v in state.get("rule_last", {}).items()}
        ladder.scoped = {d["scope"]: Decision.from_dict(d) for d in state.get("scoped", [])}
        ladder.version = max(int(state.get("version", 0)), ladder.current.version)
        return ladder

    def restore_decision(self, decision: Decision) -> None:
        """Put back a decision recovered from elsewhere (the audit log) if it is newer than ours."""
        if decision.version <= self.version:
            return
        self.version = decision.version
        if not decision.scope:
            self.current = replace(decision)
        elif decision.action is Action.ALLOW:
            self.scoped.pop(decision.scope, None)
        else:
            self.scoped[decision.scope] = replace(decision)
