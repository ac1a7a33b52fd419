"""Peer priors on Kafka: a new agent is judged on what its peers spend (its team's, else the fleet's) until
it has learned its own baseline, as in `serve` (`detectors/peer_prior.py`), though its peers live on other
workers.

A pooled prior is a sum (each warmed-up peer's normalised spend history, `WindowTotals.pooled`), so it adds
up across workers: each worker publishes, per partition it holds and per group (each team, and the fleet),
the sum of its warmed-up agents' normalised histories and how many they are, on the compacted
`spanwarden.peer-priors` topic (keyed `<partition>|<group>`: when a partition moves, its new owner's sum
replaces the old one); every worker follows the topic and pools a group's partials once they count enough
peers. Agents paged out of a worker's memory are not counted until they are back (as in `serve`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from spanwarden.collector.span_record import UNKNOWN_AGENT
from spanwarden.detectors.peer_prior import FLEET
from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig
from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.pipeline import Pipeline

log = logging.getLogger(__name__)
PUBLISH_EVERY_S = 60.0
MIN_PEERS = 3  # as `PeerPriors`


def partials(pipeline: Pipeline, home: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """This worker's sums, by `<partition>|<group>`, from its warmed-up agents in memory (`home`: each
    agent's partition)."""
    sums: dict[str, dict[str, Any]] = {}
    for agent_id, bank in pipeline.detectors.items():
        partition = home.get(agent_id)
        if partition is None or agent_id == UNKNOWN_AGENT or not bank.cost.warmed_up():
            continue
        team = pipeline.agents.get(agent_id, AgentRef()).team
        for group in (team, FLEET) if team else (FLEET,):
            entry = sums.setdefault(f"{partition}|{group}", {"group": group, "peers": 0, "windows": {}})
            entry["peers"] += 1
            for window in bank.cost.totals.windows:
                state = window.history.to_state()
                if state["total"] <= 0:
                    continue
                pooled = entry["windows"].setdefault(str(window.seconds), [0.0] * len(state["counts"]))
                if len(pooled) == len(state["counts"]):
                    for i, count in enumerate(state["counts"]):
                        pooled[i] += count / state["total"]
    return sums


class FleetPriors:
    """Every worker's partials, followed from the topic; `prior(team)` for a new agent."""

    def __init__(self, config: WindowTotalsConfig, min_peers: int = MIN_PEERS) -> None:
        self.config = config
        self.min_peers = min_peers
        self.partials: dict[str, dict[str, Any]] = {}
        self.malformed = 0
        self._cache: dict[str, WindowTotals | None] = {}

    def __call__(self, key: bytes, value: bytes) -> None:
        """One message of the topic (an empty value deletes the key)."""
        name = key.decode(errors="replace")
        self._cache.clear()
        if not value:
            self.partials.pop(name, None)
            return
        try:
            doc = orjson.loads(value)
            partial = {"group": str(doc["group"]), "peers": int(doc["peers"]),
                       "windows": {str(k): [float(c) for c in v] for k, v in doc["windows"].items()}}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self.malformed += 1
            log.error("skipped a peer-priors message for %r: %s", name, exc)
            return
        self.partials[name] = partial

    def prior(self, team: str) -> WindowTotals | None:
        """The team's pooled prior if the fleet has enough of its warmed-up agents, else the fleet's, else
        None (a new agent then learns alone)."""
        for group in (team, FLEET) if team else (FLEET,):
            if group not in self._cache:
                self._cache[group] = self._pooled(group)
            found = self._cache[group]
            if found is not None:
                return found
        return None

    def _pooled(self, group: str) -> WindowTotals | None:
        mine = [p for p in self.partials.values() if p["group"] == group]
        if sum(p["peers"] for p in mine) < self.min_peers:
            return None
        prior = WindowTotals(self.config)
        for window in prior.windows:
            pooled = [0.0] * window.history.n_bins
            for partial in mine:
                counts = partial["windows"].get(str(window.seconds))
                if counts is not None and len(counts) == len(pooled):
                    pooled = [a + b for a, b in zip(pooled, counts, strict=True)]
            window.history.load_state({"counts": pooled, "total": sum(pooled)})
        return prior
