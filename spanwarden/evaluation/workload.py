"""Seeded per-agent workloads for the evaluation suite, generated as `SpanRecord`s directly (no network), one
agent call at a time so that the guard's decisions can stop an agent mid-stream.

Normal behaviour is deliberately varied: call rates over two orders of magnitude, daily peaks, quiet
weekends, nightly batch jobs, busy spells, agents deployed mid-week, legitimate new tables, rare errors.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from spanwarden.collector.span_record import SpanRecord, make_record

MODELS = {"gpt-4o-mini": 0.0008, "gpt-4o": 0.012, "claude-sonnet-4-5": 0.015, "claude-haiku-4-5": 0.004,
          "gemini-2.5-flash": 0.002, "gpt-5-mini": 0.002, "mistral-small": 0.0005}  # typical USD per call
TEAMS = ("support", "finance", "growth", "platform", "research")
TOOLS = ("search_docs", "sql_query", "http_get", "send_email", "summarize", "create_ticket", "fetch_report")
DAY = 86_400.0


@dataclass
class AgentSpec:
    agent_id: str
    team: str
    environment: str
    model: str
    usd_per_call: float
    calls_per_min: float
    diurnal: float  # amplitude of the daily cycle, 0..0.9
    weekend: float  # rate multiplier on Saturday and Sunday
    batch_hour: float | None  # a nightly batch job starting at this hour (UTC) ...
    batch_minutes: float
    batch_factor: float  # ... running this many times faster
    tools: tuple[str, ...]
    tables: tuple[str, ...]
    rows_per_read: float
    error_rate: float
    start_s: float  # deployed at
    new_table_every_days: float | None  # a legitimate new table now and then
    spare_tables: list[str] = field(default_factory=list)


def random_spec(rng: random.Random, index: int, days: float) -> AgentSpec:
    team = rng.choice(TEAMS)
    model = rng.choice(sorted(MODELS))
    tables = [f"db:postgresql:{team}.t{k}" for k in range(rng.randint(2, 6))]
    return AgentSpec(
        agent_id=f"{team}-{index:03d}", team=team, environment=rng.choice(("prod", "prod", "prod", "staging")),
        model=model, usd_per_call=MODELS[model] * rng.lognormvariate(0, 0.5),
        calls_per_min=rng.lognormvariate(-0.5, 1.0), diurnal=rng.uniform(0.0, 0.8),
        weekend=rng.uniform(0.2, 1.0), batch_hour=rng.uniform(0, 6) if rng.random() < 0.3 else None,
        batch_minutes=rng.uniform(10, 60), batch_factor=rng.uniform(2, 6),
        tools=tuple(rng.sample(TOOLS, rng.randint(2, 5))), tables=tuple(tables),
        rows_per_read=rng.lognormvariate(3, 1.5), error_rate=rng.uniform(0.001, 0.04),
        start_s=rng.uniform(0.3, 0.6) * days * DAY if rng.random() < 0.1 else 0.0,
        new_table_every_days=rng.uniform(1, 3) if rng.random() < 0.3 else None,
        spare_tables=[f"db:postgresql:{team}.extra{k}_{index}" for k in range(8)],
    )


class NormalWork:
    """The agent's normal calls: `next_time()` then `calls(t)` for the records of one call."""

    def __init__(self, spec: AgentSpec, seed: int, epoch: float) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.epoch = epoch
        self.busy_until = 0.0
        every = spec.new_table_every_days
        self.next_new_table = spec.start_s + every * DAY if every else None
        self.n = 0

    def rate_per_s(self, t: float) -> float:
        s = self.spec
        hour = (t % DAY) / 3600
        weekday = int((self.epoch + t) // DAY + 3) % 7  # epoch day 0 was a Thursday
        rate = s.calls_per_min / 60 * (1 + s.diurnal * math.sin(2 * math.pi * (hour - 9) / 24))
        if weekday >= 5:
            rate *= s.weekend
        if s.batch_hour is not None and 0 <= hour - s.batch_hour < s.batch_minutes / 60:
            rate *= s.batch_factor
        if t < self.busy_until:
            rate *= 2.5
        elif self.rng.random() < 0.002:
            self.busy_until = t + self.rng.uniform(300, 1800)
        return max(rate, 1e-5)

    def next_time(self, t: float) -> float:
        return t + self.rng.expovariate(self.rate_per_s(t))

    def calls(self, t: float) -> list[SpanRecord]:
        s, rng = self.spec, self.rng
        tool = rng.choice(s.tools) if rng.random() < 0.6 else ""
        table = ""
        if tool in ("sql_query", "fetch_report"):
            table = rng.choice(s.tables)
            if self.next_new_table is not None and t >= self.next_new_table and s.spare_tables:
                table = s.spare_tables.pop(0)
                s.tables = (*s.tables, table)
                self.next_new_table = t + (s.new_table_every_days or 1) * DAY
        return self.make(t, cost=s.usd_per_call * rng.lognormvariate(0, 0.6), tool=tool,
                         args=str(rng.randrange(100_000)), table=table,
                         rows=int(s.rows_per_read * rng.lognormvariate(0, 0.8)) if table else 0,
                         error=rng.random() < s.error_rate)

    def make(self, t: float, cost: float, tool: str, args: str, table: str, rows: int, error: bool,
             model: str | None = None) -> list[SpanRecord]:
        s = self.spec
        self.n += 1
        end_ns = int((self.epoch + t) * 1e9)
        common = {"agent_id": s.agent_id, "team": s.team, "environment": s.environment, "owner": "eval",
                  "trace_id": f"{self.n:032x}", "start_ns": end_ns - 1_000_000_000}
        out = [make_record(span_id=f"{self.n:015x}a", end_ns=end_ns, operation="chat", model=model or s.model,
                           cost_usd=cost, cost_source="price_table", fingerprint=f"llm:{model or s.model}",
                           is_error=error and not tool, error_type="RateLimitError" if error and not tool else "",
                           **common)]
        if tool:
            out.append(make_record(span_id=f"{self.n:015x}b", end_ns=end_ns + 200_000_000,
                                   operation="execute_tool", tool_name=tool, resource=table, rows=rows,
                                   fingerprint=f"tool:{tool}:{args}", is_error=error,
                                   error_type="TimeoutError" if error else "", **common))
        return out
