"""Detect: each agent's detectors (`AgentDetectors`), made on its first span — a new agent judged on its
peers' spend while it learns its own — and paged out to disk and back when memory is capped; drift from a
pinned (reviewed) profile is a finding too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.agent_detectors import AgentDetectors, DetectorSettings
from spanwarden.detectors.finding import Finding
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.detectors.pinned_profile import PinnedProfile, ProfileDrift
from spanwarden.detectors.window_totals import WindowTotals

Prior = Callable[[SpanRecord], WindowTotals | None]  # a new agent's borrowed spend history, if any


class Detect:
    def __init__(self, settings: DetectorSettings, model: Callable[[], IsolationModel | None]) -> None:
        self.settings = settings
        self.model = model  # the fleet's behaviour model in use, for banks made or paged in
        self.banks: dict[str, AgentDetectors] = {}
        # Agents whose detectors were paged out to disk (spanwarden/embedded/agent_pager.py), and how to read
        # them back: `bank()` and the record path page them in.
        self.paged_out: set[str] = set()
        self.pager: Callable[[str], dict[str, Any] | None] | None = None
        self.pinned: dict[str, PinnedProfile] = {}  # reviewed profiles: drift from them is a finding
        self._drift = ProfileDrift()

    def bank_for(self, record: SpanRecord, prior: Prior) -> AgentDetectors:
        """The record's agent's detectors: in memory, paged in, or made now (with `prior`)."""
        bank = self.banks.get(record.agent_id) or self.bank(record.agent_id)
        if bank is None:
            bank = self.banks[record.agent_id] = AgentDetectors(record.agent_id, self.settings, prior(record))
            bank.behaviour.model = self.model()
        return bank

    def bank(self, agent_id: str) -> AgentDetectors | None:
        """The agent's detectors, paged back in from disk if they were paged out; None for an unknown agent."""
        bank = self.banks.get(agent_id)
        if bank is not None or agent_id not in self.paged_out or self.pager is None:
            return bank
        state = self.pager(agent_id)
        self.paged_out.discard(agent_id)
        if state is None:
            return None
        bank = self.banks[agent_id] = AgentDetectors.from_state(state, self.settings)
        bank.behaviour.model = self.model()
        return bank

    def page_out(self, agent_id: str) -> None:
        """Drop the agent's detectors from memory (their state is on disk, where `pager` reads it)."""
        if self.banks.pop(agent_id, None) is not None:
            self.paged_out.add(agent_id)

    def observe(self, bank: AgentDetectors, record: SpanRecord) -> list[Finding]:
        found = bank.observe(record)
        pinned = self.pinned.get(record.agent_id)
        if pinned is not None:
            found.extend(self._drift.observe(record, pinned))
        return found

    def drift(self, record: SpanRecord, pinned: PinnedProfile) -> list[Finding]:
        """The record's drift from the agent's pinned profile."""
        return self._drift.observe(record, pinned)

    def configure(self, settings: DetectorSettings) -> None:
        """New budgets and sensitive tags (a policy reload), keeping everything learned."""
        self.settings = settings
        for bank in self.banks.values():
            bank.apply_settings(settings)

    def use_model(self, model: IsolationModel) -> None:
        for bank in self.banks.values():
            bank.behaviour.model = model

    def to_state(self) -> dict[str, Any]:
        return {a: d.to_state() for a, d in self.banks.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.banks = {a: AgentDetectors.from_state(s, self.settings) for a, s in state.items()}
        model = self.model()
        if model is not None:
            self.use_model(model)

    def forget(self, agent_id: str) -> None:
        self.banks.pop(agent_id, None)
        self.paged_out.discard(agent_id)
