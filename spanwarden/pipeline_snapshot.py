"""The pipeline's state in parts, for snapshots that write only what changed: one part per agent (its
detectors, ladder, identity and records awaiting judgement) and one for the fleet (counters, team budgets,
the access requests, the shared clock, the behaviour model). `Pipeline.to_state()` is the same state in one
document; the parts put back exactly what it holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from spanwarden.detectors.agent_detectors import AgentDetectors
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.enforcers.ladder import AgentLadder

if TYPE_CHECKING:
    from spanwarden.pipeline import Pipeline

PART_VERSION = 1


def agent_ids(pipeline: Pipeline) -> set[str]:
    return {*pipeline.detectors, *pipeline.ladders, *pipeline.agents, *pipeline.arrivals.pending}


def agent_part(pipeline: Pipeline, agent_id: str) -> dict[str, Any] | None:
    """The agent's part, or None when the pipeline holds nothing of it (it was forgotten)."""
    bank, ladder, ref = (pipeline.detectors.get(agent_id), pipeline.ladders.get(agent_id),
                         pipeline.agents.get(agent_id))
    pending = pipeline.arrivals.agent_state(agent_id)["pending"]
    if bank is None and ladder is None and ref is None and not pending:
        return None
    return {"detectors": bank.to_state() if bank is not None else None,
            "ladder": ladder.to_state() if ladder is not None else None,
            "agent": [ref.owner, ref.team, ref.environment, ref.version] if ref is not None else None,
            "pending": pending}


def fleet_part(pipeline: Pipeline) -> dict[str, Any]:
    arrivals = pipeline.arrivals
    model = pipeline.behaviour_model
    return {"version": PART_VERSION, "records_seen": pipeline.records_seen,
            "team_budgets": pipeline.team_budgets.to_state(), "access": pipeline.access.to_state(),
            "arrivals": {"service_now": None if arrivals.service_now == float("-inf") else arrivals.service_now,
                         "agent_now": dict(arrivals.agent_now), "arrived": arrivals.arrived,
                         "clamped": arrivals.clamped},
            "behaviour": {"reservoir": pipeline.reservoir.to_state(), "next_fit_s": pipeline.next_fit_s,
                          "model": model.to_state() if model is not None else None}}


def load_parts(pipeline: Pipeline, fleet: dict[str, Any], agents: Iterable[tuple[str, dict[str, Any]]],
               lazy: bool = False) -> None:
    """Put the parts back (into a pipeline that holds nothing yet). `lazy`: each agent's detectors stay on
    disk, marked paged out, and come back when the agent is next needed (`Pipeline.bank`, through its pager);
    its ladder, identity and records awaiting judgement are in memory at once."""
    if fleet.get("version") != PART_VERSION:
        raise ValueError(f"pipeline snapshot part version {fleet.get('version')!r} is not {PART_VERSION}")
    pipeline.records_seen = int(fleet["records_seen"])
    pipeline.team_budgets.load_state(fleet["team_budgets"])
    pipeline.access.load_state(fleet["access"])
    clock = fleet["arrivals"]
    pipeline.arrivals.load_state({**clock, "pending": {}})
    for agent_id, part in agents:
        load_agent_part(pipeline, agent_id, part, lazy)
    behaviour = fleet["behaviour"]
    pipeline.reservoir.load_state(behaviour["reservoir"])
    pipeline.next_fit_s = float(behaviour["next_fit_s"])
    if behaviour["model"] is not None:
        pipeline._use_model(IsolationModel.from_state(behaviour["model"]))
    pipeline.dirty.clear()  # what was just read is what is on disk


def load_agent_part(pipeline: Pipeline, agent_id: str, part: dict[str, Any], lazy: bool = False) -> None:
    if part["detectors"] is not None and lazy:
        pipeline.paged_out.add(agent_id)
    elif part["detectors"] is not None:
        bank = pipeline.detectors[agent_id] = AgentDetectors.from_state(part["detectors"], pipeline.settings)
        bank.behaviour.model = pipeline.behaviour_model
    if part["ladder"] is not None:
        pipeline.ladders[agent_id] = AgentLadder.from_state(agent_id, part["ladder"])
    if part["agent"] is not None:
        pipeline.agents[agent_id] = AgentRef(agent_id, *part["agent"])
    if part["pending"]:
        pipeline.arrivals.load_agent(agent_id, part["pending"])
