"""BaselineScorer: causal, bounded, restorable, and it separates labelled anomalies on varied series."""

from __future__ import annotations

import json
import math
import random

from spanwarden.detectors.baseline import BaselineScorer
from spanwarden.evaluation.nab_score import corpus_score
from spanwarden.evaluation.series import corpus


def scores_of(values, start=0.0, step=300.0, scorer=None):
    scorer = scorer or BaselineScorer()
    return [scorer.update(start + i * step, v) for i, v in enumerate(values)]


def test_scores_are_probabilities_and_causal():
    rng = random.Random(1)
    values = [10 + rng.gauss(0, 1) for _ in range(800)]
    full = scores_of(values)
    assert all(0.0 <= s <= 1.0 for s in full)
    assert scores_of(values[:500]) == full[:500]  # what comes later never changes an earlier score


def test_a_spike_in_noise_stands_out():
    rng = random.Random(2)
    values = [100 + rng.gauss(0, 3) for _ in range(1500)]
    values[1200] = 160
    scores = scores_of(values)
    assert scores[1200] > 0.99
    assert max(scores[100:1190]) < scores[1200]


def test_a_flat_line_that_moves_is_caught_at_once():
    values = [5.0] * 600 + [5.5] * 400
    scores = scores_of(values)
    assert scores[600] > 0.99 and max(scores[50:600]) < 0.9


def test_odd_values_do_not_break_it():
    scorer = BaselineScorer()
    for i, v in enumerate([1.0, math.nan, math.inf, -1e300, 1e300, 0.0] * 20):
        s = scorer.update(1000.0 - i, v)  # a clock running backwards too
        assert 0.0 <= s <= 1.0


def test_state_round_trip_and_constant_size():
    rng = random.Random(3)
    first, second = [rng.gauss(0, 1) for _ in range(300)], [rng.gauss(0, 1) for _ in range(3000)]
    scorer = BaselineScorer()
    scores_of(first, scorer=scorer)
    size = len(json.dumps(scorer.to_state()))
    copy = BaselineScorer()
    copy.load_state(json.loads(json.dumps(scorer.to_state())))
    start = 300 * 300.0
    assert scores_of(second, start, scorer=copy) == scores_of(second, start, scorer=scorer)
    assert len(json.dumps(scorer.to_state())) < 2 * size + 500  # does not grow with the stream


def test_separates_anomalies_on_a_varied_labelled_corpus():
    series = corpus(seed=5, per_kind=2, length=3000)
    all_scores = [scores_of(s.values, s.timestamps[0]) for s in series]
    score, _ = corpus_score(all_scores, series)
    assert score > 20  # 0 is "detect nothing"; a scorer that cannot separate loses points to false alarms
