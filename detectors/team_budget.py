"""Team budgets: spend of all of a team's agents together over the last hour and day, against the policy's
team ceilings. The one piece of detection keyed by team rather than by agent (the Faust worker will need a
table keyed by team for it); a finding names the agent whose span took the team over, once a minute per
agent while the team stays over."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import evidence_of
from spanwarden.detectors.cost_velocity import _Ring
from spanwarden.detectors.finding import Finding, Severity


@dataclass(frozen=True)
class TeamBudgetConfig:
    hourly_usd: float | None = None
    daily_usd: float | None = None
    repeat_s: float = 60.0
    max_teams: int = 10_000  # bounded: team names come from spans


class TeamBudgets:
    name = "team_budget"

    def __init__(self, config: TeamBudgetConfig | None = None) -> None:
        self.config = config or TeamBudgetConfig()
        self.teams: dict[str, tuple[_Ring, _Ring]] = {}
        self.last_said: dict[str, float] = {}  # "team|agent" -> when

    @property
    def active(self) -> bool:
        return self.config.hourly_usd is not None or self.config.daily_usd is not None

    def observe(self, record: SpanRecord) -> Finding | None:
        cost = record.cost_usd
        if not record.team or not (math.isfinite(cost) and cost > 0) or not self.active:
            return None
        rings = self.teams.get(record.team)
        if rings is None:
            if len(self.teams) >= self.config.max_teams:
                return None
            rings = self.teams[record.team] = (_Ring(60.0, 60), _Ring(3600.0, 24))
        t = record.time_s
        spent = {"hour": rings[0].add(t, cost), "day": rings[1].add(t, cost)}
        for span, budget in (("hour", self.config.hourly_usd), ("day", self.config.daily_usd)):
            if budget is None or spent[span] <= budget:
                continue
            key = f"{record.team}|{record.agent_id}"
            if t - self.last_said.get(key, -math.inf) < self.config.repeat_s:
                return None
            self.last_said[key] = t
            if len(self.last_said) > 4 * self.config.max_teams:
                self.last_said = {k: v for k, v in self.last_said.items() if t - v < self.config.repeat_s}
            return Finding(
                agent_id=record.agent_id, detector=self.name, kind="team_budget_exceeded",
                score=round(spent[span] / budget, 3), severity=Severity.CRITICAL, observed=round(spent[span], 4),
                expected=budget, unit=f"usd_per_{span}", subject=record.team,
                reason=(f"team {record.team} spent ${spent[span]:.2f} in the last {span}, over its "
                        f"${budget:.2f}/{span} budget; this agent is spending"),
                time_s=t, evidence=evidence_of(record),
            )
        return None

    def to_state(self) -> dict[str, Any]:
        return {"teams": {team: [[r.index, list(r.slots)] for r in rings] for team, rings in self.teams.items()},
                "last_said": self.last_said}

    def load_state(self, state: dict[str, Any]) -> None:
        self.teams = {}
        for team, saved in state["teams"].items():
            rings = (_Ring(60.0, 60), _Ring(3600.0, 24))
            for ring, (index, slots) in zip(rings, saved, strict=True):
                ring.index, ring.slots = index, array("d", slots)
                ring.sum = sum(ring.slots)
            self.teams[team] = rings
        self.last_said = {k: float(v) for k, v in state["last_said"].items()}
