"""Normalise benchmark: `Normalizer.records` alone (OTLP request -> SpanRecords), on the fixed mix of
`normalize_mix`, as CPU microseconds per span in this process, overall and by family.

Each round decodes every body afresh (protobuf's Python objects are made lazily, on first access, and a
request normalised twice would find them made), untimed; only `records` is timed, by the process's CPU
clock, so the figure is the normaliser's own cost on a busy machine too."""

from __future__ import annotations

import gc
import time
from typing import Any

from spanwarden.bench.normalize_mix import mix
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, decode_request
from spanwarden.collector.pricing import PriceTable


def run(seconds: float = 3.0, max_rounds: int = 1000, seed: int = 7) -> dict[str, Any]:
    """Rounds over the whole mix for about `seconds` of normalising (at least one, at most `max_rounds`)."""
    bodies = mix(seed)
    normalizer = Normalizer(PriceTable.load())
    cpu: dict[str, float] = dict.fromkeys(bodies, 0.0)
    spans: dict[str, int] = dict.fromkeys(bodies, 0)
    wall = 0.0
    rounds = 0
    gc.collect()
    while rounds < max_rounds and (rounds == 0 or sum(cpu.values()) < seconds):
        for family, family_bodies in bodies.items():
            for body in family_bodies:
                request = decode_request(body, PROTOBUF)
                started, started_cpu = time.perf_counter(), time.process_time()
                spans[family] += len(normalizer.records(request))
                cpu[family] += time.process_time() - started_cpu
                wall += time.perf_counter() - started
                del request
        rounds += 1
    total_spans, total_cpu = sum(spans.values()), sum(cpu.values())
    return {
        "spans_per_s": round(total_spans / wall, 1),
        "cpu_us_per_span": round(total_cpu / total_spans * 1e6, 2),
        "cpu_us_per_span_by_family": {f: round(cpu[f] / spans[f] * 1e6, 2) for f in bodies},
        "spans_per_round": total_spans // rounds,
        "rounds": rounds,
    }
