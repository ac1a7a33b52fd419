"""Seeded synthetic traffic for detector tests: one agent's normal work, and injected anomalies."""

from __future__ import annotations

import random

from spanwarden.collector.span_record import SpanRecord, make_record

T0 = 1_800_000_000.0
TABLES = ("db:pg:crm.tickets", "db:pg:crm.accounts", "db:pg:kb.articles")
TOOLS = ("search", "sql_query", "http_get")


def normal(seed: int, hours: float, start: float = T0, agent: str = "agent-a",
           calls_per_min: float = 3.0) -> list[SpanRecord]:
    """Bursty normal work: Poisson calls with busy spells, small costs, rare errors, a few tables."""
    rng = random.Random(seed)
    out, t, busy = [], start, False
    while t < start + hours * 3600:
        if rng.random() < 0.002:
            busy = not busy
        t += rng.expovariate(calls_per_min / 60 * (3 if busy else 1))
        tool = rng.choice(TOOLS) if rng.random() < 0.5 else ""
        out.append(make_record(
            agent_id=agent, span_id=f"{len(out):016x}", trace_id="ab" * 16, end_ns=int(t * 1e9),
            start_ns=int((t - 1) * 1e9), model="gpt-4o-mini", cost_usd=rng.lognormvariate(-5.5, 0.7),
            tool_name=tool, resource=rng.choice(TABLES) if tool == "sql_query" else "",
            is_error=rng.random() < 0.02, fingerprint=f"tool:{tool}:{rng.randrange(1000)}" if tool else "",
        ))
    return out


def runaway(start: float, seconds: float, agent: str = "agent-a") -> list[SpanRecord]:
    """A loop: the same expensive call several times a second ($45/min)."""
    return [make_record(agent_id=agent, span_id=f"f{i:015x}", end_ns=int((start + i * 0.2) * 1e9),
                        model="gpt-4o", cost_usd=0.15, tool_name="search", fingerprint="tool:search:same")
            for i in range(int(seconds / 0.2))]


def new_tables(start: float, count: int, agent: str = "agent-a") -> list[SpanRecord]:
    """Reads of tables never seen before, one sensitive, every 10 s."""
    names = [f"db:pg:hr.table_{i}" for i in range(count)]
    names[min(1, count - 1)] = "db:pg:crm.customers_pii"
    return [make_record(agent_id=agent, span_id=f"e{i:015x}", end_ns=int((start + 10 * i) * 1e9),
                        tool_name="sql_query", resource=name) for i, name in enumerate(names)]


def error_storm(start: float, seconds: float, agent: str = "agent-a") -> list[SpanRecord]:
    """Two calls a second, nearly all failing on one tool."""
    return [make_record(agent_id=agent, span_id=f"d{i:015x}", end_ns=int((start + i * 0.5) * 1e9),
                        tool_name="http_get", is_error=i % 10 != 0, error_type="TimeoutError",
                        fingerprint=f"tool:http_get:{i % 7}")
            for i in range(int(seconds / 0.5))]


def merged(*streams: list[SpanRecord]) -> list[SpanRecord]:
    return sorted((r for s in streams for r in s), key=lambda r: r.end_ns)
