"""Each ladder transition: up by policy, escalation on persistence, caps per environment, expiry back to
allow, halts that only a human lifts, and commands applied exactly."""

from __future__ import annotations

import pytest

from spanwarden.detectors.finding import Finding, Severity
from spanwarden.enforcers.decision import Action
from spanwarden.enforcers.ladder import AgentLadder
from spanwarden.enforcers.policy import Policy, PolicyError, Rule, RuleContext

PROD = RuleContext("prod")
POLICY = Policy.from_yaml("""
version: t1
environments: {dev: {max_action: warn}, "*": {max_action: halt}}
rules:
  - {id: crit, detector: cost_velocity, min_severity: critical, action: halt}
  - {id: warn, detector: cost_velocity, min_severity: warning, action: warn}
  - {id: prod-only, detector: data_access, min_severity: warning, action: throttle, environments: [prod]}
escalation: {findings: 3, within_s: 300}
expiry_s: {warn: 600, throttle: 900}
throttle_per_s: 0.25
""")


def finding(t: float, severity=Severity.WARNING, detector="cost_velocity") -> Finding:
    return Finding("a", detector, "k", 1.5, severity, 2.0, 1.0, "u", "why", t, ("t/s",))


def test_warning_warns_and_critical_halts():
    ladder = AgentLadder("a")
    warned = ladder.on_finding(finding(0), PROD, POLICY)
    assert warned.action is Action.WARN and warned.version == 1 and warned.decided_by == "policy:warn@t1"
    assert warned.expires_s == 600
    halted = ladder.on_finding(finding(10, Severity.CRITICAL), PROD, POLICY)
    assert halted.action is Action.HALT and halted.version == 2 and halted.expires_s is None
    assert ladder.on_finding(finding(20), PROD, POLICY) is None  # never down by a weaker finding


def test_persistent_findings_escalate_one_rung_and_never_to_a_halt():
    ladder = AgentLadder("a")
    actions = [d.action for t in range(0, 300, 10) if (d := ladder.on_finding(finding(t), PROD, POLICY))]
    assert actions == [Action.WARN, Action.THROTTLE]
    assert ladder.current.throttle_per_s == 0.25 and "escalated" in ladder.current.reason
    assert ladder.on_finding(finding(310, Severity.CRITICAL), PROD, POLICY).action is Action.HALT


def test_a_rule_can_keep_escalation_lower_and_cannot_raise_it_to_halt():
    policy = POLICY.model_copy(update={"rules": (Rule(id="w", detector="*", action=Action.WARN,
                                                      escalate_to=Action.WARN),)})
    ladder = AgentLadder("a")
    assert {d.action for t in range(0, 300, 10) if (d := ladder.on_finding(finding(t), PROD, policy))} == {
        Action.WARN}
    with pytest.raises(PolicyError, match="escalation goes at most to throttle"):
        Policy.from_yaml("version: x\nrules: [{id: r, action: warn, escalate_to: halt}]")


def test_decisions_are_issued_and_expire_on_the_service_time_given():
    ladder = AgentLadder("a")
    warned = ladder.on_finding(finding(0), PROD, POLICY, now_s=50.0)
    assert warned.issued_s == 50.0 and warned.expires_s == 650.0
    assert ladder.tick(640.0) is None and ladder.tick(650.0).action is Action.ALLOW


def test_findings_spread_out_do_not_escalate():
    ladder = AgentLadder("a")
    decisions = [ladder.on_finding(finding(t), PROD, POLICY) for t in (0, 400, 800)]
    assert {d.action for d in decisions if d} == {Action.WARN}  # refreshed near expiry, never escalated


def test_environment_caps_the_action():
    ladder = AgentLadder("a")
    capped = ladder.on_finding(finding(0, Severity.CRITICAL), RuleContext("dev"), POLICY)
    assert capped.action is Action.WARN and "capped at warn in environment dev" in capped.reason


def test_rules_scoped_to_environments():
    assert AgentLadder("a").on_finding(finding(0, detector="data_access"), RuleContext("staging"), POLICY) is None
    throttled = AgentLadder("a").on_finding(finding(0, detector="data_access"), PROD, POLICY)
    assert throttled.action is Action.THROTTLE and throttled.throttle_per_s == 0.25


def test_decisions_lapse_after_expiry_but_halts_do_not():
    ladder = AgentLadder("a")
    ladder.on_finding(finding(0), PROD, POLICY)
    assert ladder.tick(599) is None
    lapsed = ladder.tick(600)
    assert lapsed.action is Action.ALLOW and lapsed.version == 2 and "expired" in lapsed.reason
    ladder.on_finding(finding(700, Severity.CRITICAL), PROD, POLICY)
    assert ladder.tick(10**9) is None and ladder.current.action is Action.HALT


def test_same_rung_is_refreshed_only_near_expiry():
    ladder = AgentLadder("a")
    ladder.on_finding(finding(0), PROD, POLICY)
    assert ladder.on_finding(finding(1000, detector="x"), PROD, POLICY) is None  # no rule matches "x"
    assert ladder.on_finding(finding(100), PROD, POLICY) is None
    refreshed = ladder.on_finding(finding(500), PROD, POLICY)
    assert refreshed is not None and refreshed.expires_s == 1100


def test_resume_undoes_exactly_and_is_attributed():
    ladder = AgentLadder("a")
    ladder.on_finding(finding(0, Severity.CRITICAL), PROD, POLICY)
    resumed = ladder.command(Action.ALLOW, "false alarm", "alice", 50, override_s=300)
    assert resumed.action is Action.ALLOW and resumed.decided_by == "human:alice" and resumed.version == 2
    again = ladder.on_finding(finding(60, Severity.CRITICAL), PROD, POLICY)
    assert again.action is Action.WARN and "after a human's command" in again.reason
    later = ladder.on_finding(finding(400, Severity.CRITICAL), PROD, POLICY)
    assert later.action is Action.HALT  # the override has lapsed


def test_state_round_trip():
    ladder = AgentLadder("a")
    ladder.on_finding(finding(0), PROD, POLICY)
    ladder.on_finding(finding(5), PROD, POLICY)
    copy = AgentLadder.from_state("a", ladder.to_state())
    assert copy.current == ladder.current and list(copy.recent) == list(ladder.recent)


@pytest.mark.parametrize("text, message", [
    ("version: x\nrules: [{id: a, action: explode}]", "rules.0.action"),
    ("version: x\nrules: [{id: a, action: warn, severity: high}]", "rules.0.severity: Extra inputs"),
    ("version: x\nrules: [{id: a, action: warn, min_severity: loud}]", "unknown severity 'loud'"),
    ("rules: []", "version: Field required"),
    ("version: x\nescalation: {findings: 0}", "escalation.findings"),
    ("version: [unclosed", "not valid YAML"),
    ("- a list", "expected a mapping"),
])
def test_invalid_policies_name_the_key(text, message):
    from spanwarden.enforcers.policy import PolicyError
    with pytest.raises(PolicyError, match=message):
        Policy.from_yaml(text, "p.yaml")


def test_shipped_policy_loads_and_starts_from_what_teams_do():
    policy = Policy.load()
    assert policy.ceiling("dev") is Action.WARN and policy.ceiling("prod") is Action.HALT
    assert policy.budgets.agent_usd_per_hour == 100


def test_policy_errors_name_the_line(tmp_path):
    from spanwarden.enforcers.policy import PolicyError
    text = "version: x\nrules:\n  - {id: a, action: warn}\n  - id: b\n    action: explode\n"
    with pytest.raises(PolicyError, match=r"p.yaml: line 5: rules.1.action"):
        Policy.from_yaml(text, "p.yaml")


def test_rules_scoped_by_agent_team_model_and_tool():
    policy = Policy.from_yaml("""
version: s1
rules:
  - {id: pay, detector: "*", tools: ["pay_*"], action: halt}
  - {id: big-model, detector: "*", models: ["gpt-4o*"], teams: [finance], action: throttle}
  - {id: canary, detector: "*", agents: ["canary-*"], action: warn}
""")
    f = finding(0)
    assert policy.rule_for(f, RuleContext("prod", tool="pay_invoice")).id == "pay"
    assert policy.rule_for(f, RuleContext("prod", team="finance", model="gpt-4o-mini")).id == "big-model"
    assert policy.rule_for(f, RuleContext("prod", team="growth", model="gpt-4o-mini")) is None
    canary = Finding("canary-7", "cost_velocity", "k", 1.5, Severity.WARNING, 2.0, 1.0, "u", "why", 0.0)
    assert policy.rule_for(canary, RuleContext("prod")).id == "canary"


def test_rule_cooldown_holds_back_same_rung_refreshes():
    policy = Policy.from_yaml("""
version: c1
rules: [{id: w, detector: "*", action: warn, cooldown_s: 1000}]
escalation: {findings: 100, within_s: 10}
expiry_s: {warn: 600}
""")
    ladder = AgentLadder("a")
    assert ladder.on_finding(finding(0), PROD, policy) is not None
    assert ladder.on_finding(finding(400), PROD, policy) is None  # near expiry, but within the cooldown
    assert ladder.on_finding(finding(1100), PROD, policy) is not None  # lapsed: a new warn
