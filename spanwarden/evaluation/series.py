"""Seeded synthetic operational series with labelled anomalies, shaped like the public streaming benchmarks'
real-world data: daily and weekly seasonality, noise of different kinds, sparse counts, flat lines, drifts;
anomalies as spikes, dips, level shifts, flat lines that move, a missing daily peak, and faster drift."""

from __future__ import annotations

import math
import random

from spanwarden.evaluation.nab_score import LabelledSeries

STEP_S = 300.0
START = 1_700_006_400.0  # a Wednesday, 00:00 UTC


def corpus(seed: int = 0, per_kind: int = 3, length: int = 4000) -> list[LabelledSeries]:
    rng = random.Random(seed)
    out = []
    for kind in KINDS:
        for i in range(per_kind):
            out.append(_series(kind, f"{kind}-{i}", random.Random(rng.random()), length))
    return out


KINDS = ("seasonal_spike", "noisy_shift", "flat_then_move", "sparse_burst", "drift_faster", "heavy_tail_spike",
         "cpu_dip", "missing_peak")


def _series(kind: str, name: str, rng: random.Random, n: int) -> LabelledSeries:
    t = [START + i * STEP_S for i in range(n)]
    base = rng.uniform(10, 1000)
    daily = [math.sin(2 * math.pi * (ti % 86400) / 86400) for ti in t]
    weekday = [1.0 if ((ti // 86400) + 3) % 7 < 5 else 0.5 for ti in t]
    noise = rng.uniform(0.02, 0.1) * base
    x = [base + 0.3 * base * d * w + rng.gauss(0, noise) for d, w in zip(daily, weekday, strict=True)]
    anomalies = sorted(rng.sample(range(int(0.3 * n), int(0.95 * n)), rng.randint(1, 3)))
    anomalies = [a for k, a in enumerate(anomalies) if k == 0 or a - anomalies[k - 1] > n // 10]
    for a in anomalies:
        if kind == "seasonal_spike":
            x[a] += rng.choice((-1, 1)) * rng.uniform(6, 12) * noise
        elif kind == "noisy_shift":
            for i in range(a, n):
                x[i] += rng.uniform(5, 8) * noise
        elif kind == "flat_then_move":
            level = x[0]
            for i in range(n):
                x[i] = level if i < a else level * rng.uniform(1.05, 1.2) + rng.gauss(0, noise * 0.2)
        elif kind == "sparse_burst":
            for i in range(n):
                x[i] = float(sum(rng.random() < 0.02 for _ in range(5)))
            for i in range(a, min(n, a + 12)):
                x[i] = float(rng.randint(4, 9))
        elif kind == "drift_faster":
            for i in range(n):
                x[i] += 0.0002 * base * i + (0.003 * base * (i - a) if i >= a else 0)
        elif kind == "heavy_tail_spike":
            x[a] = base * rng.uniform(15, 30)
        elif kind == "cpu_dip":
            for i in range(a, min(n, a + 24)):
                x[i] = rng.uniform(0, 0.05) * base
        elif kind == "missing_peak":
            for i in range(a, min(n, a + 72)):
                x[i] = base + rng.gauss(0, noise)
    if kind in ("sparse_burst", "flat_then_move"):
        anomalies = anomalies[:1]
    half = max(2, int(0.1 * n / max(len(anomalies), 1)) // 2)
    windows = [(max(0, a - half), min(n - 1, a + half)) for a in anomalies]
    return LabelledSeries(name, t, x, windows)
