"""The Numenta Anomaly Benchmark's scoring (standard profile), to judge a streaming scorer on labelled series.

Each labelled anomaly has a window; the first detection inside a window earns up to A_TP (more the earlier it
is), a window never detected costs A_FN, and every detection outside windows costs A_FP, less if it closely
follows a window. Scores are normalised so 0 is "detect nothing" and 100 is "detect every window at its
start"; the threshold on the scorer's output is the one that maximises the corpus score, as NAB does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

A_TP, A_FP, A_FN = 1.0, -0.11, -1.0
PROBATION = 0.15


@dataclass(frozen=True)
class LabelledSeries:
    name: str
    timestamps: Sequence[float]
    values: Sequence[float]
    windows: Sequence[tuple[int, int]]  # [start, end] indices, inclusive


def _sigmoid(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def raw_score(scores: Sequence[float], windows: Sequence[tuple[int, int]], threshold: float) -> float:
    n = len(scores)
    probation = int(PROBATION * n)
    total = 0.0
    detected = [False] * len(windows)
    for i, s in enumerate(scores):
        if s < threshold:
            continue
        inside = next((k for k, (a, b) in enumerate(windows) if a <= i <= b), None)
        if inside is not None:
            if not detected[inside]:
                a, b = windows[inside]
                detected[inside] = True
                total += A_TP * _sigmoid(-(b - i) / max(b - a, 1))
            continue
        if i < probation:
            continue
        before = [w for w in windows if w[1] < i]
        if before:
            a, b = before[-1]
            total += A_FP * -_sigmoid((i - b) / max(b - a, 1))
        else:
            total += A_FP
    return total + A_FN * detected.count(False)


def corpus_score(all_scores: Sequence[Sequence[float]], corpus: Sequence[LabelledSeries],
                 thresholds: Sequence[float] | None = None) -> tuple[float, float]:
    """(normalised NAB score, best threshold)."""
    windows = sum(len(s.windows) for s in corpus)
    null, perfect = A_FN * windows, A_TP * windows
    best = (-math.inf, 1.0)
    for threshold in thresholds or [0.5 + 0.5 * (1 - 10 ** (-k / 4)) for k in range(1, 25)]:
        raw = sum(raw_score(sc, s.windows, threshold) for sc, s in zip(all_scores, corpus, strict=True))
        best = max(best, (100 * (raw - null) / (perfect - null), threshold))
    return best
