"""All detectors of one agent, behind one `observe`: the unit of state that the embedded runtime keeps in
memory and the Faust worker keeps in a table keyed by agent.

It also gates repeats: while an anomaly persists, the same finding (detector, kind, subject) is passed on
again only when its severity rises or after `repeat_s`, so a runaway produces a handful of findings, not
one per span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.base import Detector
from spanwarden.detectors.behaviour import Behaviour, BehaviourConfig
from spanwarden.detectors.call_volume import CallVolume, CallVolumeConfig
from spanwarden.detectors.cost_velocity import CostVelocity, CostVelocityConfig
from spanwarden.detectors.data_access import DataAccess, DataAccessConfig
from spanwarden.detectors.error_burst import ErrorBurst, ErrorBurstConfig
from spanwarden.detectors.finding import Finding
from spanwarden.detectors.runaway_loop import RunawayLoop, RunawayLoopConfig
from spanwarden.detectors.window_totals import WindowTotals
from spanwarden.detectors.write_volume import WriteVolume, WriteVolumeConfig

STATE_VERSION = 1


@dataclass(frozen=True)
class DetectorSettings:
    """Configuration of every detector, shared by all agents (the policy fills budgets and tags)."""

    cost_velocity: CostVelocityConfig = field(default_factory=CostVelocityConfig)
    data_access: DataAccessConfig = field(default_factory=DataAccessConfig)
    error_burst: ErrorBurstConfig = field(default_factory=ErrorBurstConfig)
    runaway_loop: RunawayLoopConfig = field(default_factory=RunawayLoopConfig)
    call_volume: CallVolumeConfig = field(default_factory=CallVolumeConfig)
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)
    write_volume: WriteVolumeConfig = field(default_factory=WriteVolumeConfig)
    repeat_s: float = 60.0


class AgentDetectors:
    """The detectors for one agent."""

    def __init__(self, agent_id: str, settings: DetectorSettings | None = None,
                 cost_prior: WindowTotals | None = None) -> None:
        self.agent_id = agent_id
        self.settings = settings or DetectorSettings()
        s = self.settings
        self.cost = CostVelocity(agent_id, s.cost_velocity, cost_prior)
        self.behaviour = Behaviour(agent_id, s.behaviour)
        self.data_access = DataAccess(agent_id, s.data_access)
        self.write_volume = WriteVolume(agent_id, s.write_volume)
        self.error_burst = ErrorBurst(agent_id, s.error_burst)
        self.runaway_loop = RunawayLoop(agent_id, s.runaway_loop)
        self.call_volume = CallVolume(agent_id, s.call_volume)
        # In the order they observe (and their findings are gated and reported).
        self.detectors: list[Detector] = [
            self.cost,
            self.data_access,
            self.error_burst,
            self.runaway_loop,
            self.call_volume,
            self.write_volume,
            self.behaviour,
        ]
        self.last_emitted: dict[str, tuple[float, int]] = {}  # gate key -> (time, severity)

    def observe(self, record: SpanRecord) -> list[Finding]:
        # Each detector by name (the same order as `detectors`), the record's time read once for all of them;
        # the gate only reads what it kept itself, so it may judge their findings after they all observed.
        t = record.end_ns / 1e9  # `record.time_s`
        a = self.cost.observe_at(record, t)
        b = self.data_access.observe_at(record, t)
        c = self.error_burst.observe_at(record, t)
        d = self.runaway_loop.observe_at(record, t)
        e = self.call_volume.observe_at(record, t)
        f = self.write_volume.observe_at(record, t)
        g = self.behaviour.observe_at(record, t)
        if a is None and b is None and c is None and d is None and e is None and f is None and g is None:
            return []  # the common case
        return [x for x in (a, b, c, d, e, f, g) if x is not None and self._passes_gate(x)]

    def _passes_gate(self, finding: Finding) -> bool:
        key = f"{finding.detector}|{finding.kind}|{finding.subject}"
        previous = self.last_emitted.get(key)
        if previous is not None:
            when, severity = previous
            if finding.severity <= severity and finding.time_s - when < self.settings.repeat_s:
                return False
        if len(self.last_emitted) > 256:  # bounded: forget gates that have long lapsed
            horizon = finding.time_s - self.settings.repeat_s
            self.last_emitted = {k: v for k, v in self.last_emitted.items() if v[0] >= horizon}
        self.last_emitted[key] = (finding.time_s, int(finding.severity))
        return True

    def apply_settings(self, settings: DetectorSettings) -> None:
        """Take new budgets and sensitive tags (a policy reload) without losing anything learned."""
        self.settings = settings
        self.cost.config = settings.cost_velocity
        self.data_access.configure(settings.data_access)
        self.write_volume.config = settings.write_volume

    def detector(self, name: str) -> Detector:
        for detector in self.detectors:
            if detector.name == name:
                return detector
        raise KeyError(f"no detector named {name!r}")

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "agent_id": self.agent_id,
            "detectors": {d.name: d.to_state() for d in self.detectors},
            "gate": {k: list(v) for k, v in self.last_emitted.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: DetectorSettings | None = None) -> AgentDetectors:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"detector state version {state.get('version')!r} is not {STATE_VERSION}")
        bank = cls(state["agent_id"], settings)
        for detector in bank.detectors:
            saved = state["detectors"].get(detector.name)
            if saved is not None:
                detector.load_state(saved)
        bank.last_emitted = {k: (float(v[0]), int(v[1])) for k, v in state["gate"].items()}
        return bank
