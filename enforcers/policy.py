"""The policy: which action each finding leads to, per environment, loaded from YAML with errors that
name the key at fault."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spanwarden.detectors.finding import Finding, Severity
from spanwarden.enforcers.decision import Action


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvironmentPolicy(_Strict):
    max_action: Action = Action.HALT


@dataclass(frozen=True)
class RuleContext:
    """What a rule can be scoped by, besides the finding itself."""

    environment: str
    team: str = ""
    model: str = ""
    tool: str = ""


def _any(patterns: tuple[str, ...], value: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(value, p) for p in patterns)


class Rule(_Strict):
    id: str
    detector: str = "*"
    kind: str = "*"
    min_severity: Severity = Severity.WARNING
    action: Action
    cooldown_s: float = Field(0.0, ge=0)  # once it has decided for an agent, no same-rung refresh before this
    # Persistence escalates a rule's findings one rung, at most to this: repeated warnings can slow an agent
    # down, never halt it (a halt takes a critical finding, a ceiling reached, or a human).
    escalate_to: Action = Action.THROTTLE
    # Scopes, each a list of fnmatch patterns; empty matches everything.
    environments: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    @field_validator("min_severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> Any:
        return Severity.parse(value) if isinstance(value, str) else value

    @field_validator("escalate_to")
    @classmethod
    def _no_manufactured_halt(cls, value: Action) -> Action:
        if value not in (Action.ALLOW, Action.WARN, Action.THROTTLE):
            raise ValueError(f"escalation goes at most to throttle, not {value.value}: a halt takes a rule whose "
                             "own action is halt (a critical finding), a budget ceiling reached, or a human")
        return value

    def matches(self, finding: Finding, context: RuleContext) -> bool:
        return (
            finding.severity >= self.min_severity
            and fnmatch.fnmatchcase(finding.detector, self.detector)
            and fnmatch.fnmatchcase(finding.kind, self.kind)
            and _any(self.environments, context.environment)
            and _any(self.agents, finding.agent_id)
            and _any(self.teams, context.team)
            and _any(self.models, context.model)
            and _any(self.tools, context.tool)
        )


class Escalation(_Strict):
    findings: int = Field(3, ge=1)
    within_s: float = Field(300.0, gt=0)


class Budgets(_Strict):
    agent_usd_per_hour: float | None = Field(100.0, gt=0)
    agent_usd_per_day: float | None = Field(None, gt=0)
    team_usd_per_hour: float | None = Field(None, gt=0)
    team_usd_per_day: float | None = Field(None, gt=0)


class EffectRule(_Strict):
    """Operations that wait for a human by what they do, whatever the tool is called: `effect` (a write rule
    covers destructive operations too) on a resource matching one of `resources` (fnmatch, case-insensitive,
    against the resource id, its name, and each table the statement names)."""

    effect: Literal["write", "destructive"]
    resources: tuple[str, ...] = ("*",)


class Approvals(_Strict):
    """Calls that wait for a human's approval in these environments: tools by name (fnmatch patterns) and
    operations by their effect (`effects`)."""

    environments: tuple[str, ...] = ("prod",)
    tools: tuple[str, ...] = ()
    effects: tuple[EffectRule, ...] = ()
    timeout_s: float = Field(300.0, gt=0)


class AccessRequests(_Strict):
    """When an agent reaches for a resource outside its profile, ask a human for that resource only, instead
    of acting on the whole agent: the call is held (`wait`, up to `timeout_s`) or refused at once
    (`fail_fast`, the agent may retry once approved)."""

    environments: tuple[str, ...] = ("prod",)
    kinds: tuple[str, ...] = ("sensitive_outside_profile", "sensitive_unreviewed", "novel_resources")
    hold: Literal["wait", "fail_fast"] = "wait"
    timeout_s: float = Field(300.0, gt=0)
    # A write (POST/PUT/PATCH, an upload, a message sent) to an external host outside the profile asks for that
    # host, held at the call's start by the guard; reads of new hosts stay findings. Which hosts are the
    # agent's own (not external) is the service setting SPANWARDEN_INTERNAL_DOMAINS.
    egress: bool = True
    # A first call to a model the agent has never used, priced at the price-jump detector's warn multiple
    # (10x) or more of the agent's usual price per token, asks for that model ("model:<name>"), held at the
    # call's start by the guard (spanwarden/model_gate.py).
    models: bool = True


class Policy(_Strict):
    version: str
    environments: dict[str, EnvironmentPolicy] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    escalation: Escalation = Escalation()
    expiry_s: dict[Action, float] = Field(default_factory=lambda: {Action.WARN: 600.0, Action.THROTTLE: 900.0})
    throttle_per_s: float = Field(0.5, gt=0)
    human_override_s: float = Field(300.0, ge=0)  # after a human's command, the policy may only warn
    budgets: Budgets = Budgets()
    sensitive_resources: tuple[str, ...] = ()
    approvals: Approvals = Approvals()
    access_requests: AccessRequests = AccessRequests()

    def rule_for(self, finding: Finding, context: RuleContext) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(finding, context)), None)

    def ceiling(self, environment: str) -> Action:
        env = self.environments.get(environment) or self.environments.get("*")
        return env.max_action if env else Action.HALT

    def expiry(self, action: Action) -> float | None:
        return None if action is Action.HALT else self.expiry_s.get(action, 600.0)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<policy>") -> Policy:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise PolicyError(f"{source}: expected a mapping at the top level")
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_where(text, err['loc'])}{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise PolicyError(f"{source}: {problems}") from exc

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """The policy at `path`, or the shipped default policy."""
        if path is None:
            text = resources.files("spanwarden.enforcers").joinpath("default_policy.yaml").read_text()
            return cls.from_yaml(text, "default_policy.yaml")
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
        return cls.from_yaml(text, str(path))


def _where(text: str, loc: tuple[Any, ...]) -> str:
    """"line N: " for the YAML node at `loc` (or its nearest parent that exists), "" if unknown."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return f"line {node.start_mark.line + 1}: " if node is not None else ""
