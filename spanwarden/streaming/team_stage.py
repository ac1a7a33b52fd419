"""Team budgets on Kafka: the one piece of detection keyed by team, in its own stage.

The detect stage sends each agent's priced records of a team (re-keyed by team) to the team-spend topic;
the team stage — whichever worker holds the team's partition — adds them to the team's hour and day
(`detectors/team_budget.py`, state in a table keyed by team, with a changelog) and, when the team is over a
ceiling, sends the finding to the worker that holds the spending agent as a command, where the agent's
ladder decides (the shipped policy throttles), as `serve` does. Sources already counted are remembered per
team, so a batch replayed after a crash is not counted twice; the finding's command id comes from its
source, so a replayed finding decides once."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from spanwarden.detectors.finding import Finding
from spanwarden.detectors.team_budget import TeamBudgetConfig, TeamBudgets
from spanwarden.enforcers.decision import Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.pipeline import Pipeline
from spanwarden.streaming.record_batch import SourceRecords

log = logging.getLogger(__name__)
SOURCES_REMEMBERED = 4096  # per team: far more than one round's sources
STATE_FORMAT = 1


def config_of(policy: Policy) -> TeamBudgetConfig:
    return TeamBudgetConfig(policy.budgets.team_usd_per_hour, policy.budgets.team_usd_per_day)


def team_spend(sources: list[SourceRecords]) -> dict[str, list[SourceRecords]]:
    """The priced records of these sources by team (what the detect stage re-keys for the team stage)."""
    out: dict[str, list[SourceRecords]] = {}
    for source in sources:
        by_team: dict[str, list[Any]] = {}
        for record in source.records:
            if record.team and record.cost_usd > 0:
                by_team.setdefault(record.team, []).append(record)
        for team, records in by_team.items():
            out.setdefault(team, []).append(source._replace(records=records))
    return out


@dataclass
class TeamOutput:
    team: str
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (agent, command)
    state: bytes = b""


class TeamStage:
    def __init__(self, policy: Policy, states: Mapping[str, bytes]) -> None:
        self.budgets = TeamBudgets(config_of(policy))
        self.states = states
        self.seen: dict[str, deque[str]] = {}
        self.counted_again = 0

    def set_policy(self, policy: Policy) -> None:
        self.budgets.config = config_of(policy)

    def process(self, team: str, sources: list[SourceRecords]) -> TeamOutput:
        """Count the team's spend from these sources (once each); the findings go out as commands."""
        self._ensure(team)
        out = TeamOutput(team)
        seen = self.seen[team]
        for source in sources:
            agent_id = source.records[0].agent_id if source.records else ""
            key = f"{agent_id}/{source.partition}/{source.offset}/{source.part}"
            if key in seen:
                self.counted_again += 1
                continue
            seen.append(key)
            for n, record in enumerate(source.records):
                finding = self.budgets.observe(record) if self.budgets.active else None
                if finding is not None:
                    out.commands.append((finding.agent_id, {"id": f"team/{team}/{key}/{n}", "type": "finding",
                                                            "finding": finding.to_dict()}))
        out.state = self.state_bytes(team)
        return out

    def state_bytes(self, team: str) -> bytes:
        rings = self.budgets.teams.get(team)
        prefix = f"{team}|"
        return orjson.dumps({
            "format": STATE_FORMAT, "seen": list(self.seen[team]),
            "rings": None if rings is None else [[r.index, list(r.slots)] for r in rings],
            "last_said": {k: v for k, v in self.budgets.last_said.items() if k.startswith(prefix)}})

    def _ensure(self, team: str) -> None:
        if team in self.seen:
            return
        self.seen[team] = deque(maxlen=SOURCES_REMEMBERED)
        raw = self.states.get(team)
        if not raw:
            return
        try:
            state = orjson.loads(raw)
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"state format {state.get('format')!r}, expected {STATE_FORMAT}")
            self.seen[team].extend(str(k) for k in state["seen"])
            if state["rings"] is not None:  # through the detector's own loader, one team at a time
                teams, said = self.budgets.teams, self.budgets.last_said
                self.budgets.load_state({"teams": {team: state["rings"]}, "last_said": {}})
                self.budgets.teams, self.budgets.last_said = {**teams, **self.budgets.teams}, said
            self.budgets.last_said.update({str(k): float(v) for k, v in state["last_said"].items()})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("state of team %r is unreadable (%s); its spend is counted again from now", team, exc)

    def forget_all(self) -> None:
        """After a rebalance the table is the truth: teams are read back on their next spend."""
        for team in list(self.seen):
            self.budgets.teams.pop(team, None)
        self.budgets.last_said.clear()
        self.seen.clear()


def apply_finding(pipeline: Pipeline, finding: Finding, now_s: float) -> Decision | None:
    """A finding made elsewhere (the team stage) about one of this worker's agents: audited and put to the
    agent's ladder as the pipeline does with its own findings."""
    return pipeline.apply_finding(finding, now_s)
