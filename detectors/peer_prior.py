"""Peer-group priors: a new agent is judged on what its peers (same team, else the whole fleet) spend until
it has learned its own baseline. Pooled from warmed-up peers, each weighing the same, and cached per group
for an hour of record time so that a burst of new agents costs one pooling, not one each."""

from __future__ import annotations

from collections.abc import Callable

from spanwarden.detectors.window_totals import WindowTotals, WindowTotalsConfig

FLEET = "*"


class PeerPriors:
    def __init__(self, config: WindowTotalsConfig, min_peers: int = 3, refresh_s: float = 3600.0) -> None:
        self.config = config
        self.min_peers = min_peers
        self.refresh_s = refresh_s
        self._cache: dict[str, tuple[float, WindowTotals | None]] = {}

    def cost_prior(self, team: str, now_s: float,
                   warmed_peers: Callable[[str], list[WindowTotals]]) -> WindowTotals | None:
        """The team's pooled prior if it has enough warmed-up agents, else the fleet's, else None.
        `warmed_peers(group)` lists the spend histories of a team's (or, for "*", all) warmed-up agents."""
        for group in ((team, FLEET) if team else (FLEET,)):
            cached = self._cache.get(group)
            if cached is None or now_s - cached[0] > self.refresh_s:
                peers = warmed_peers(group)
                prior = WindowTotals.pooled(peers, self.config) if len(peers) >= self.min_peers else None
                cached = self._cache[group] = (now_s, prior)
            if cached[1] is not None:
                return cached[1]
        return None
