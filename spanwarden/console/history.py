"""What the console draws over time, from the activity journal each agent's spans are kept in
(`STATE_DIR/activity`, written by `serve`, and by the Kafka gateway from its workers' rollups): the recent
tail of an agent's file, and pure bucketing of it into spend, calls and errors per interval."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from spanwarden.embedded.activity_journal import file_name

TAIL_BYTES = 1 << 20  # the most of one agent's journal a page reads (its newest spans)
TOP_MODELS = 5  # models drawn one by one; the rest as "other"


def tail(directory: Path, agent_id: str, max_bytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The agent's newest spans, oldest first, read from at most `max_bytes` at the end of its journal."""
    path = directory / file_name(agent_id)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.seek(max(0, size - max_bytes), os.SEEK_SET)
            data = handle.read(max_bytes)
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line was cut by the seek
    items = []
    for line in lines:
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("t"), (int, float)):
            items.append(item)
    return items


@dataclass
class Window:
    """Figures of one agent over [end_s - span_s, end_s], in `buckets` equal intervals."""

    spend: list[float]
    calls: int = 0
    errors: int = 0
    usd: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


def window(items: Iterable[dict[str, Any]], end_s: float, span_s: float = 3600.0, buckets: int = 12) -> Window:
    start, step = end_s - span_s, span_s / buckets
    out = Window([0.0] * buckets)
    for item in items:
        t = float(item["t"])
        if not start <= t <= end_s:
            continue
        index = min(int((t - start) / step), buckets - 1)
        usd = float(item.get("usd") or 0.0)
        out.spend[index] += usd
        out.usd += usd
        n = int(item.get("n", 1))  # a line of the Kafka gateway's journal stands for n calls
        out.calls += n
        out.errors += n if item.get("error") else 0
    return out


@dataclass
class ModelSeries:
    start_s: float
    step_s: float
    series: dict[str, list[float]] = field(default_factory=dict)  # model -> USD per interval


def by_model(items: list[dict[str, Any]], buckets: int = 48) -> ModelSeries:
    """Spend per interval for each of the agent's top models (by spend), the rest summed as "other", over
    the time the items cover."""
    priced = [i for i in items if i.get("usd")]
    if not priced:
        return ModelSeries(0.0, 0.0)
    start, end = float(priced[0]["t"]), float(priced[-1]["t"])
    step = max((end - start) / buckets, 1.0)
    totals: dict[str, float] = {}
    for item in priced:
        model = str(item.get("model") or "unknown")
        totals[model] = totals.get(model, 0.0) + float(item["usd"])
    top = set(sorted(totals, key=lambda m: -totals[m])[:TOP_MODELS])
    result = ModelSeries(start, step)
    for item in priced:
        model = str(item.get("model") or "unknown")
        name = model if model in top else "other"
        row = result.series.setdefault(name, [0.0] * buckets)
        row[min(int((float(item["t"]) - start) / step), buckets - 1)] += float(item["usd"])
    return result
