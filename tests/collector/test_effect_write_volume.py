"""The write-volume detector, held to the detectors' conformance properties (round trip, determinism, silence
while warming up, separation of an injected bulk delete from normal writes), and its `unheld_write`
findings for operations that ran without the approval the policy asks for."""

from __future__ import annotations

import json
import random

import pytest

from spanwarden.collector.span_record import make_record
from spanwarden.detectors.agent_detectors import AgentDetectors
from spanwarden.detectors.base import Detector
from spanwarden.detectors.finding import Severity
from spanwarden.detectors.write_volume import WriteVolume, WriteVolumeConfig
from spanwarden.enforcers.policy import Policy
from spanwarden.pipeline import detector_settings_for
from tests.detectors import traffic
from tests.detectors.traffic import T0

ONSET = T0 + 4 * 3600


def normal_writes(seed: int, hours: float):
    """Normal traffic where the agent's SQL calls insert or update a few rows each."""
    rng = random.Random(seed)
    out = []
    for record in traffic.normal(seed, hours):
        if record.tool_name == "sql_query":
            record = record._replace(effect="write", effect_summary="INSERT INTO orders", rows=rng.randint(1, 20))
        out.append(record)
    return out


def bulk_delete(start: float, count: int = 40):
    return [make_record(agent_id="agent-a", span_id=f"b{i:015x}", trace_id="cd" * 16,
                        end_ns=int((start + i) * 1e9), effect="destructive", rows=500,
                        effect_summary="DELETE FROM orders", resource="db:pg:shop.orders", environment="prod")
            for i in range(count)]


def run(detector, records):
    return [f for r in records if (f := detector.observe(r)) is not None]


def test_is_a_detector_and_registered_with_every_agent():
    assert isinstance(WriteVolume("a"), Detector)
    assert AgentDetectors("a").detector("write_volume") is not None


def test_state_round_trip_resumes_exactly():
    stream = traffic.merged(normal_writes(1, 5), bulk_delete(ONSET))
    half = len(stream) // 2 + 7
    original = WriteVolume("agent-a")
    run(original, stream[:half])
    restored = WriteVolume("agent-a")
    restored.load_state(json.loads(json.dumps(original.to_state())))
    assert restored.to_state() == original.to_state()
    assert run(restored, stream[half:]) == run(original, stream[half:])


def test_deterministic_and_silent_while_warming_up():
    stream = traffic.merged(normal_writes(2, 5), bulk_delete(ONSET))
    assert run(WriteVolume("agent-a"), stream) == run(WriteVolume("agent-a"), stream)
    early = traffic.merged(normal_writes(3, 0.25), bulk_delete(T0 + 60))
    assert run(WriteVolume("agent-a"), early) == []


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_separates_a_bulk_delete_from_normal_writes(seed):
    normal = normal_writes(seed, 6)
    assert [f for f in run(WriteVolume("agent-a"), normal) if f.severity >= Severity.WARNING] == []
    findings = run(WriteVolume("agent-a"), traffic.merged(normal, bulk_delete(ONSET)))
    spikes = [f for f in findings if f.kind == "write_spike" and f.time_s >= ONSET]
    assert spikes and min(f.time_s for f in spikes) - ONSET < 60
    assert spikes[0].evidence and "rows" in spikes[0].reason


def test_refused_operations_did_not_run_and_count_for_nothing():
    detector = WriteVolume("agent-a")
    refused = [r._replace(approval="denied:req-1") for r in bulk_delete(T0)]
    assert run(detector, refused) == [] and detector.writes == 0


def test_an_operation_that_needed_approval_and_ran_without_one_is_a_finding():
    policy = Policy.from_yaml("""
version: t
approvals:
  environments: [prod]
  effects: [{effect: destructive}, {effect: write, resources: ["*payment*"]}]
""")
    config = detector_settings_for(policy).write_volume
    assert config.held_environments == ("prod",)
    detector = WriteVolume("agent-a", config)
    drop = make_record(agent_id="agent-a", environment="prod", effect="destructive", end_ns=int(T0 * 1e9),
                       effect_summary="DROP TABLE prod.orders", resource="db:pg:prod.orders", span_id="1" * 16)
    [finding] = run(detector, [drop])
    assert (finding.kind, finding.severity, finding.evidence) == ("unheld_write", Severity.WARNING,
                                                                   (f"/{'1' * 16}",))
    assert "DROP TABLE prod.orders" in finding.reason and "without the approval" in finding.reason
    approved = drop._replace(approval="req-1234abcd")
    in_dev = drop._replace(environment="dev")
    payment_insert = drop._replace(effect="write", effect_summary="INSERT INTO payments",
                                   resource="db:pg:shop.payments")
    plain_insert = payment_insert._replace(effect_summary="INSERT INTO orders", resource="db:pg:shop.orders")
    assert run(detector, [approved, in_dev, plain_insert]) == []
    assert [f.kind for f in run(detector, [payment_insert])] == ["unheld_write"]
    assert detector.unheld == 2


def test_unheld_findings_are_not_configured_without_effect_rules():
    detector = WriteVolume("agent-a", WriteVolumeConfig())
    assert run(detector, bulk_delete(T0)[:1]) == []
