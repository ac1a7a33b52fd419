"""The evaluation suite meets the detection targets on a fleet smaller than the default (fast enough for
CI); `spanwarden eval` with defaults is the full 100 agents x 7 days."""

from __future__ import annotations

import pytest

from spanwarden.evaluation.incidents import KINDS
from spanwarden.evaluation.suite import EvalConfig, build, run


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4])
def test_targets_on_a_small_fleet(seed):
    result = run(EvalConfig(seed=seed, agents=40, days=3.0, incidents_per_kind=2))
    assert result["incidents"] == 2 * len(KINDS) >= 16
    assert result["recall"] >= 0.95, result["missed"]
    assert result["precision"] >= 0.9, result["false_alerts_by_kind"]
    assert result["false_halts_per_agent_day"] <= 0.01
    assert result["runaway_s_to_halt"] <= 10 and result["runaway_usd_after_onset"] < 10
    for name, figures in result["per_detector"].items():
        assert figures["recall"] >= 0.75, (name, figures)


def test_fleet_is_seeded_and_varied():
    agents, incidents = build(EvalConfig(seed=3, agents=40, days=3.0))
    again, incidents_again = build(EvalConfig(seed=3, agents=40, days=3.0))
    assert [a.normal.spec for a in agents] == [a.normal.spec for a in again] and incidents == incidents_again
    rates = sorted(a.normal.spec.calls_per_min for a in agents)
    assert rates[-1] / rates[0] > 20  # call rates over more than an order of magnitude
    assert {i.kind for i in incidents} == set(KINDS) and len(KINDS) >= 8
    assert any(a.normal.spec.batch_hour is not None for a in agents)
    assert any(a.normal.spec.new_table_every_days for a in agents)
