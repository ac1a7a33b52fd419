"""The multivariate minute model: a compact isolation forest, the per-agent detector, the refitters."""

from __future__ import annotations

import json
import time

import numpy as np

from spanwarden.collector.span_record import make_record
from spanwarden.detectors.behaviour import Behaviour
from spanwarden.detectors.finding import Severity
from spanwarden.detectors.isolation_model import IsolationModel
from spanwarden.model_refit import Reservoir, SyncRefitter, ThreadRefitter

from .traffic import T0


def normal_vectors(n=600, seed=0):
    return np.random.default_rng(seed).normal(0, 0.3, size=(n, 6))


def test_isolation_model_scores_as_scikit_learn_does_and_round_trips():
    from sklearn.ensemble import IsolationForest

    data = normal_vectors()
    model = IsolationModel.fit(data, seed=1)
    forest = IsolationForest(n_estimators=25, max_samples=128, random_state=1).fit(data)
    usual, odd, edge = [0.0] * 6, [1.5] * 6, [0.0, 0.0, 0.0, 2.5, 2.0, 0.0]
    for x in (usual, odd, edge):
        assert abs(model.score(x) - -forest.score_samples(np.array([x]))[0]) < 1e-9
    assert model.score(odd) > model.threshold > model.score(usual)
    # Far past the training range in two of six features isolates no faster than the range's edge does:
    # that is what `excess` is for.
    assert model.score(edge) < model.threshold and model.excess(edge) > 1
    copy = IsolationModel.from_state(json.loads(json.dumps(model.to_state())))
    assert copy.score(odd) == model.score(odd) and copy.threshold == model.threshold
    assert model.excess([0.0, 0.0, 0.0, 9.0, 0.0, 0.0]) > 5


def test_a_minute_far_outside_its_usual_is_an_explained_info_finding():
    detector = Behaviour("agent-a")
    detector.model = IsolationModel.fit(normal_vectors(), seed=1)
    t, findings = T0, []
    for minute in range(120):  # two calls a minute, 30 rows each, one table
        for k in range(2):
            r = make_record(agent_id="agent-a", span_id=f"{minute:08x}{k:08x}", end_ns=int((t + 60 * minute + k)
                                                                                           * 1e9),
                            tool_name="sql", resource="db:t1", rows=30, cost_usd=0.001)
            findings += [f for f in [detector.observe(r)] if f]
    bulk = [make_record(agent_id="agent-a", span_id=f"b{i:015x}", end_ns=int((t + 7200 + i) * 1e9),
                        tool_name="sql", resource=f"db:t{i % 9}", rows=500_000) for i in range(20)]
    after = make_record(agent_id="agent-a", span_id="c" * 16, end_ns=int((t + 7300) * 1e9))
    findings += [f for r in [*bulk, after] if (f := detector.observe(r))]
    assert len(findings) == 1
    finding = findings[0]
    assert finding.severity is Severity.INFO and finding.unit == "rows" and "usually" in finding.reason


def test_reservoir_is_bounded_and_seeded():
    a, b = Reservoir(capacity=50, seed=3), Reservoir(capacity=50, seed=3)
    for i in range(1000):
        a.offer([float(i)])
        b.offer([float(i)])
    assert len(a.items) == 50 and a.items == b.items and max(v[0] for v in a.items) > 500


def test_thread_refitter_fits_off_the_caller_and_hands_the_model_over():
    refitter = ThreadRefitter()
    refitter.submit(normal_vectors(), seed=2)
    deadline = time.monotonic() + 30
    model = None
    while model is None and time.monotonic() < deadline:
        model = refitter.ready()
        time.sleep(0.01)
    refitter.close()
    assert isinstance(model, IsolationModel)
    sync = SyncRefitter()
    sync.submit(normal_vectors(), seed=2)
    assert sync.ready().threshold == model.threshold and sync.ready() is None
