"""BaselineScorer benchmark: NAB-style score on the synthetic labelled corpus, and points scored per second."""

from __future__ import annotations

import time
from typing import Any

from spanwarden.detectors.baseline import BaselineScorer
from spanwarden.evaluation.nab_score import corpus_score
from spanwarden.evaluation.series import corpus


def run(seed: int = 0, per_kind: int = 3, length: int = 4000) -> dict[str, Any]:
    series = corpus(seed, per_kind, length)
    started = time.perf_counter()
    all_scores = []
    for s in series:
        scorer = BaselineScorer()
        all_scores.append([scorer.update(t, v) for t, v in zip(s.timestamps, s.values, strict=True)])
    elapsed = time.perf_counter() - started
    score, threshold = corpus_score(all_scores, series)
    return {"nab_score": round(score, 1), "threshold": round(threshold, 6), "series": len(series),
            "points_per_s": round(sum(len(s.values) for s in series) / elapsed, 1)}
