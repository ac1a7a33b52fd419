"""The suite every detector passes: state round-trip, determinism, odd input, warm-up silence, and
separation of injected anomalies from normal traffic."""

from __future__ import annotations

import json
import math

import pytest

from spanwarden.collector.span_record import make_record
from spanwarden.detectors.base import POLICY_BACKSTOPS, Detector
from spanwarden.detectors.behaviour import Behaviour
from spanwarden.detectors.call_volume import CallVolume, CallVolumeConfig
from spanwarden.detectors.cost_velocity import CostVelocity
from spanwarden.detectors.data_access import DataAccess
from spanwarden.detectors.error_burst import ErrorBurst
from spanwarden.detectors.finding import Severity
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.detectors.runaway_loop import RunawayLoop

from . import traffic
from .traffic import T0

ONSET = T0 + 4 * 3600
INJECTIONS = {
    CostVelocity: lambda: traffic.runaway(ONSET, 60),
    DataAccess: lambda: traffic.new_tables(ONSET, 6),
    ErrorBurst: lambda: traffic.error_storm(ONSET, 120),
    RunawayLoop: lambda: traffic.runaway(ONSET, 60),
    CallVolume: lambda: traffic.runaway(ONSET, 60),
    Behaviour: lambda: traffic.runaway(ONSET, 120),
}
DETECTORS = list(INJECTIONS)
# Behaviour findings are advisory (info); the others alert at warning.
ALERT = {Behaviour: Severity.INFO}
# Call volume waits a day to see its agent's daily peak; these streams are hours long.
CONFIGS = {CallVolume: CallVolumeConfig(warmup_s=3600.0)}


def run(detector: Detector, records):
    return [f for r in records if (f := detector.observe(r)) is not None]


def _behaviour_model() -> IsolationModel:
    """The shared model a runtime would fit: on normal minutes of several agents like the test agent."""
    import numpy as np

    vectors = []
    for seed in range(20, 26):
        trainer = Behaviour("trainer")
        trainer.normal_vectors = _Unbounded()
        run(trainer, traffic.normal(seed, 8))
        vectors += list(trainer.normal_vectors)
    return IsolationModel.fit(np.array(vectors), seed=0)


class _Unbounded(list):
    def __delitem__(self, key):  # keep every vector for fitting (the detector trims when nobody collects)
        pass


_MODEL: list[IsolationModel] = []


def make(kind, agent="agent-a"):
    detector = kind(agent, CONFIGS[kind]) if kind in CONFIGS else kind(agent)
    if kind is Behaviour:
        if not _MODEL:
            _MODEL.append(_behaviour_model())
        detector.model = _MODEL[0]
    return detector


@pytest.fixture(params=DETECTORS, ids=lambda c: c.name)
def kind(request):
    return request.param


def test_is_a_detector(kind):
    assert isinstance(make(kind), Detector)


def test_state_round_trip_resumes_exactly(kind):
    stream = traffic.merged(traffic.normal(1, 5), INJECTIONS[kind]())
    half = len(stream) // 2 + 7
    original = make(kind)
    run(original, stream[:half])
    restored = make(kind)
    restored.load_state(json.loads(json.dumps(original.to_state())))
    assert restored.to_state() == original.to_state()
    assert run(restored, stream[half:]) == run(original, stream[half:])


def test_deterministic(kind):
    stream = traffic.merged(traffic.normal(2, 5), INJECTIONS[kind]())
    assert run(make(kind), stream) == run(make(kind), stream)


def test_odd_input_never_crashes(kind):
    detector = make(kind)
    odd = [
        make_record(agent_id="agent-a"),
        make_record(agent_id="agent-a", end_ns=int(T0 * 1e9), cost_usd=math.nan, resource="x" * 300),
        make_record(agent_id="agent-a", end_ns=int(T0 * 1e9), cost_usd=math.inf, is_error=True),
        make_record(agent_id="agent-a", end_ns=int((T0 - 86400) * 1e9), cost_usd=-3.0, tool_name="?"),
        make_record(agent_id="agent-a", end_ns=int((T0 + 10 * 365 * 86400) * 1e9), cost_usd=1.0),
    ]
    run(detector, odd)
    json.dumps(detector.to_state())


def test_silent_while_warming_up(kind):
    """Even an anomaly right at the start gives no learned finding before the warm-up is over (policy
    backstops such as the budget ceiling and sensitive tags apply from the first record)."""
    detector = make(kind)
    at_start = [r._replace(end_ns=r.end_ns - int(4 * 3600 * 1e9)) for r in INJECTIONS[kind]()]
    stream = traffic.merged(traffic.normal(3, 0.25), at_start)
    assert [f for f in run(detector, stream) if f.kind not in POLICY_BACKSTOPS] == []


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_separates_injected_anomalies_from_normal_traffic(kind, seed):
    normal = traffic.normal(seed, 6)
    alert = ALERT.get(kind, Severity.WARNING)
    quiet = make(kind)
    false_alerts = [f for f in run(quiet, normal) if f.severity >= alert]
    if kind is Behaviour:  # a model of unusual minutes flags a few of any agent's minutes, by design
        assert len(false_alerts) <= 0.01 * 6 * 60
    else:
        assert false_alerts == []
    noisy = make(kind)
    findings = run(noisy, traffic.merged(normal, INJECTIONS[kind]()))
    anomalous = [f for f in findings if f.severity >= alert and f.time_s >= ONSET]
    assert anomalous
    first = min(anomalous, key=lambda f: f.time_s)
    assert first.time_s - ONSET < (121 if kind is Behaviour else 60)  # behaviour judges whole minutes
    assert first.reason and first.evidence and first.agent_id == "agent-a"


def test_sensitive_resources_are_never_learned_silently():
    detector = DataAccess("agent-a")
    pii = make_record(agent_id="agent-a", end_ns=int(T0 * 1e9), resource="db:pg:crm.customers_pii")
    first = detector.observe(pii)
    assert first.kind == "sensitive_unreviewed" and first.severity is Severity.INFO  # asks a human
    assert "db:pg:crm.customers_pii" not in detector.profile
    for r in traffic.normal(5, 2):
        detector.observe(r)
    later = detector.observe(pii._replace(end_ns=int((T0 + 3 * 3600) * 1e9)))
    assert later.kind == "sensitive_outside_profile" and later.severity is Severity.CRITICAL
