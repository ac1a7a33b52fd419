"""What every stage reads: the policy in force, the audit sink, who is told of findings and decisions, the
agents' identities, and the agents whose state changed since the last snapshot took them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from spanwarden.audit_sink import AuditSink
from spanwarden.detectors.finding import Finding
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.decision import Decision
from spanwarden.enforcers.policy import Policy


@dataclass
class Shared:
    policy: Policy
    audit: AuditSink
    on_decision: Callable[[Decision], None]
    on_finding: Callable[[Finding], None]
    agents: dict[str, AgentRef] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def ref(self, agent_id: str) -> AgentRef:
        return self.agents.get(agent_id) or AgentRef(id=agent_id)

    def audit_finding(self, finding: Finding, ref: AgentRef, extra: dict[str, str] | None = None) -> None:
        """Tell of a finding and audit it (by its detector, under the policy in force)."""
        self.on_finding(finding)
        self.audit.append("finding", ref, f"detector:{finding.detector}", finding.reason, finding.time_s,
                          finding.evidence, self.policy.version, {**finding.to_dict(), **(extra or {})})
