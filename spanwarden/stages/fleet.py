"""Fleet learning, beside the per-agent stages: peer priors (a new agent judged on its team's pooled spend),
team budgets, and the behaviour model refitted from a reservoir of the fleet's normal minute vectors. A
runtime that sees only part of the fleet (a Kafka worker) runs with it off and ships its agents' normal
vectors elsewhere (`on_normal_vectors`) rather than learn from a partial fleet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from spanwarden.collector.span_record import UNKNOWN_AGENT, SpanRecord
from spanwarden.detectors.agent_detectors import AgentDetectors
from spanwarden.detectors.finding import Finding
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.detectors.peer_prior import FLEET, PeerPriors
from spanwarden.detectors.team_budget import TeamBudgetConfig, TeamBudgets
from spanwarden.detectors.window_totals import WindowTotals
from spanwarden.enforcers.policy import Policy
from spanwarden.model_refit import Refitter, Reservoir, SyncRefitter
from spanwarden.stages.shared import Shared

REFIT_MIN_VECTORS = 256
REFIT_EVERY_S = 6 * 3600.0


def team_budget_config(policy: Policy) -> TeamBudgetConfig:
    return TeamBudgetConfig(policy.budgets.team_usd_per_hour, policy.budgets.team_usd_per_day)


class Fleet:
    def __init__(self, shared: Shared, priors: PeerPriors, enabled: bool, refitter: Refitter | None = None,
                 seed: int = 0) -> None:
        self.shared = shared
        self.enabled = enabled
        self.priors = priors
        self.team_budgets = TeamBudgets(team_budget_config(shared.policy))
        self.refitter = refitter or SyncRefitter()
        self.seed = seed
        self.reservoir = Reservoir(seed=seed)
        self.behaviour_model: IsolationModel | None = None
        self.next_fit_s = 0.0
        # Where a runtime without fleet learning ships its agents' normal minute vectors (to the fleet's
        # refitter, `streaming/fleet_model.py`), before they are dropped.
        self.on_normal_vectors: Callable[[list[list[float]], float], None] = lambda vectors, t: None
        self.on_model: Callable[[IsolationModel], None] = lambda model: None  # banks take a new model

    def prior(self, record: SpanRecord, banks: dict[str, AgentDetectors]) -> WindowTotals | None:
        """The pooled spend history a new agent is judged on while it learns its own (None: fleet off)."""
        if not self.enabled:
            return None
        return self.priors.cost_prior(record.team, record.time_s, lambda team: self._warmed(team, banks))

    def _warmed(self, team: str, banks: dict[str, AgentDetectors]) -> list[WindowTotals]:
        agents = self.shared.agents
        return [bank.cost.totals for agent_id, bank in banks.items()
                if bank.cost.warmed_up() and agent_id != UNKNOWN_AGENT
                and (team == FLEET or (agents[agent_id].team if agent_id in agents else "") == team)]

    def team_finding(self, record: SpanRecord) -> Finding | None:
        return self.team_budgets.observe(record) if self.team_budgets.active and self.enabled else None

    def collect(self, bank: AgentDetectors, t: float) -> None:
        """Take an agent's normal minute vectors: into the fleet's reservoir (refitting the shared model on
        schedule), or shipped elsewhere when fleet learning is off."""
        vectors = bank.behaviour.normal_vectors
        if not self.enabled:
            self.on_normal_vectors(vectors, t)
            vectors.clear()
            return
        for vector in vectors:
            self.reservoir.offer(vector)
        vectors.clear()
        if t >= self.next_fit_s and len(self.reservoir.items) >= REFIT_MIN_VECTORS:
            self.next_fit_s = t + REFIT_EVERY_S
            self.refitter.submit(np.array(self.reservoir.items), self.seed)
            self.poll()

    def poll(self) -> None:
        """Use a model the refitter has finished, if any."""
        fitted = self.refitter.ready()
        if fitted is not None:
            self.use_model(fitted)

    def use_model(self, model: IsolationModel) -> None:
        self.behaviour_model = model
        self.on_model(model)

    def configure(self, policy: Policy) -> None:
        self.team_budgets.config = team_budget_config(policy)

    def to_state(self) -> dict[str, Any]:
        return {"team_budgets": self.team_budgets.to_state(),
                "behaviour": {"reservoir": self.reservoir.to_state(), "next_fit_s": self.next_fit_s,
                              "model": self.behaviour_model.to_state() if self.behaviour_model else None}}

    def load_state(self, team_budgets: dict[str, Any], behaviour: dict[str, Any]) -> None:
        self.team_budgets.load_state(team_budgets)
        self.reservoir.load_state(behaviour["reservoir"])
        self.next_fit_s = float(behaviour["next_fit_s"])
        if behaviour["model"] is not None:
            self.use_model(IsolationModel.from_state(behaviour["model"]))


