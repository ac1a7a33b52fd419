"""The evaluation suite meets the detection targets on a fleet smaller than the default (fast enough for
CI), and it can fail: dulled detectors lose recall, jumpy ones precision. `spanwarden eval` with defaults is
the full 100 agents x 7 days (the done-when figures come from seeds these tests do not use)."""

from __future__ import annotations

import pytest

from spanwarden.evaluation.incidents import KINDS
from spanwarden.evaluation.sensitivity import scaled
from spanwarden.evaluation.suite import EvalConfig, build, run
from spanwarden.evaluation.workload import NormalWork, random_spec

SMALL = {"agents": 40, "days": 3.0, "incidents_per_kind": 2}
TINY = {"agents": 24, "days": 2.5, "incidents_per_kind": 1}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4])
def test_targets_on_a_small_fleet(seed):
    result = run(EvalConfig(seed=seed, **SMALL))
    assert result["incidents"] == 2 * len(KINDS) >= 24
    assert result["recall"] >= 0.95, result["missed"]
    assert result["precision"] >= 0.9, result["false_alerts_by_kind"]
    assert result["false_halts_per_agent_day"] <= 0.01
    # 3 s held for event-time order, 1 s of export batching, 1 s to the guard: a $45/min runaway is halted
    # within about 10 s of its onset
    assert result["runaway_s_to_halt"] <= 15 and result["runaway_usd_after_onset"] < 15
    # A model ~100x the price at the same call rate (~$12/hour) is a critical price jump on its first call; what
    # is spent after that is the 5 s it takes to act (1 s export, 3 s lateness hold, 1 s to the guard) during a
    # task's burst of $1-2 calls: under $5 on the full fleets, up to ~$6 on these small ones
    assert result["model_switch_usd_after_onset"] < 8
    for name, figures in result["per_detector"].items():
        assert figures["recall"] >= 0.75, (name, figures)


@pytest.mark.slow
def test_the_eval_tells_a_dulled_or_jumpy_detector_bank_from_the_shipped_one():
    shipped = run(EvalConfig(seed=2, **TINY))
    dulled = run(EvalConfig(seed=2, detectors=scaled(10.0), **TINY))
    jumpy = run(EvalConfig(seed=2, detectors=scaled(0.1), **TINY))
    assert dulled["recall"] < shipped["recall"] - 0.1, (dulled["missed"], shipped["missed"])
    assert jumpy["precision"] < shipped["precision"] - 0.1
    assert jumpy["false_halts_per_agent_day"] > shipped["false_halts_per_agent_day"]


def test_fleet_is_seeded_and_varied():
    agents, incidents = build(EvalConfig(seed=3, agents=40, days=3.0))
    again, incidents_again = build(EvalConfig(seed=3, agents=40, days=3.0))
    assert [a.normal.spec for a in agents] == [a.normal.spec for a in again] and incidents == incidents_again
    specs = [a.normal.spec for a in agents]
    rates = sorted(s.calls_per_min for s in specs)
    assert rates[-1] / rates[0] > 20  # call rates over more than an order of magnitude
    assert {i.kind for i in incidents} == set(KINDS) and len(KINDS) >= 12
    assert any(s.batch_hour is not None for s in specs) and any(s.new_table_every_days for s in specs)
    assert any(len(s.tools) == 1 and not s.args_recorded for s in specs)  # one tool, no arguments recorded
    assert any(len(s.replica_skews) >= 3 for s in specs) and any(s.autoscale for s in specs)
    assert any(s.deploy_at for s in specs) and any(s.sensitive_tables for s in specs)


def test_normal_work_has_bursty_tasks_heavy_tailed_tokens_retries_and_autoscaling():
    import random

    spec = random_spec(random.Random(5), 0, 7.0)
    spec.autoscale, spec.error_rate, spec.tools = (3600.0, 1800.0, 7200.0), 0.2, ("http_get",)
    work = NormalWork(spec, 7, 0.0)
    assert work.scale(0) == 1.0 and work.scale(3600 + 1800 + 100) == 3.0 and work.scale(3600 + 900) == 2.0
    t, gaps, records = 0.0, [], []
    for _ in range(2000):
        nxt = work.next_time(t)
        gaps.append(nxt - t)
        t = nxt
        records += work.calls(t)
    short = sum(g < 3 for g in gaps) / len(gaps)
    assert 0.5 < short < 0.95  # most calls are steps of a task, close together
    tokens = sorted(r.input_tokens for r in records if r.model)
    assert tokens[int(0.99 * len(tokens))] > 8 * tokens[len(tokens) // 2]  # log-normal, sigma ~1
    tool_calls = [r for r in records if r.tool_name]
    retried = [(a, b) for a, b in zip(tool_calls, tool_calls[1:], strict=False)
               if a.is_error and b.resource == a.resource and 0 < b.end_ns - a.end_ns <= 8e9]
    assert retried
