"""Seeded per-agent workloads for the evaluation suite, generated as `SpanRecord`s one agent call at a time (so
that the guard's decisions can stop an agent mid-stream); the suite sends them to the pipeline through OTLP.

Normal behaviour is deliberately varied and realistic: call rates over two orders of magnitude, daily peaks,
quiet weekends, nightly batch jobs, busy spells, agents deployed mid-week, legitimate new tables, rare errors
with legitimate retries of the same call; work comes as tasks of bursty steps; most agents record no tool
arguments (the default of every instrumentation) and some have a single tool; several replicas per agent,
each with its own clock skew; ×3 autoscaling over tens of minutes; deploys that raise tokens per call ×1.5;
heavy-tailed tokens per call (log-normal, σ = 1); some agents' normal tables include a sensitive-named one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from spanwarden.collector.pricing import PriceTable
from spanwarden.collector.span_record import SpanRecord, make_record

MODELS = {"gpt-4o-mini": 0.0008, "gpt-4o": 0.012, "claude-sonnet-4-5": 0.015, "claude-haiku-4-5": 0.004,
          "gemini-2.5-flash": 0.002, "gpt-5-mini": 0.002, "mistral-small": 0.0005}  # typical USD per call
TEAMS = ("support", "finance", "growth", "platform", "research")
TOOLS = ("search_docs", "sql_query", "http_get", "send_email", "summarize", "create_ticket", "fetch_report")
DAY = 86_400.0
TOKEN_SIGMA = 1.0
STEPS_PER_TASK = 5.0
PRICES = PriceTable.load()


def tokens_for(model: str, usd: float) -> tuple[int, int]:
    """Input and output tokens (4:1) that cost `usd` with `model` at the shipped prices."""
    per_unit, _ = PRICES.cost(model, 4_000_000, 1_000_000, 0)
    units = max(usd, 0.0) / per_unit * 1_000_000
    return max(1, int(4 * units)), max(1, int(units))


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
    hosts: tuple[str, ...]  # what its http_get calls reach
    rows_per_read: float
    error_rate: float
    start_s: float  # deployed at
    new_table_every_days: float | None  # a legitimate new table now and then
    args_recorded: bool  # whether its instrumentation records tool arguments
    replica_skews: tuple[float, ...]  # one clock skew (s) per replica
    autoscale: tuple[float, float, float] | None  # (start, ramp, hold) s: traffic x3 for a while
    deploy_at: float | None  # from then on, 1.5x the tokens per call
    spare_tables: list[str] = field(default_factory=list)

    @property
    def sensitive_tables(self) -> tuple[str, ...]:
        return tuple(t for t in self.tables if "_pii" in t)


def random_spec(rng: random.Random, index: int, days: float) -> AgentSpec:
    team = rng.choice(TEAMS)
    model = rng.choice(sorted(MODELS))
    tables = [f"db:postgresql:{team}.t{k}" for k in range(rng.randint(2, 6))]
    if rng.random() < 0.1:
        tables.append(f"db:postgresql:{team}.customers_pii")
    tools = tuple(rng.sample(TOOLS, 1 if rng.random() < 0.2 else rng.randint(2, 5)))
    replicas = rng.choice((1, 1, 2, 3, 4))
    return AgentSpec(
        agent_id=f"{team}-{index:03d}", team=team, environment=rng.choice(("prod", "prod", "prod", "staging")),
        model=model, usd_per_call=MODELS[model] * rng.lognormvariate(0, 0.5),
        calls_per_min=rng.lognormvariate(-0.5, 1.0), diurnal=rng.uniform(0.0, 0.8),
        weekend=rng.uniform(0.2, 1.0), batch_hour=rng.uniform(0, 6) if rng.random() < 0.3 else None,
        batch_minutes=rng.uniform(10, 60), batch_factor=rng.uniform(2, 6),
        tools=tools, tables=tuple(tables), hosts=tuple(f"http:api{k}.{team}.internal" for k in range(2)),
        rows_per_read=rng.lognormvariate(3, 1.5), error_rate=rng.uniform(0.001, 0.04),
        start_s=rng.uniform(0.3, 0.6) * days * DAY if rng.random() < 0.1 else 0.0,
        new_table_every_days=rng.uniform(1, 3) if rng.random() < 0.3 else None,
        args_recorded=rng.random() < 0.4,
        replica_skews=tuple(rng.uniform(-3, 3) for _ in range(replicas)),
        autoscale=((rng.uniform(0.5, days - 1) * DAY, rng.uniform(1200, 2400), rng.uniform(3600, 12 * 3600))
                   if rng.random() < 0.2 else None),
        deploy_at=rng.uniform(1, days - 0.5) * DAY if rng.random() < 0.3 else None,
        spare_tables=[f"db:postgresql:{team}.extra{k}_{index}" for k in range(8)],
    )


class NormalWork:
    """The agent's normal calls: `next_time()` then `calls(t)` for the records of one call (with its retries);
    `replica` names the replica that made the latest one."""

    def __init__(self, spec: AgentSpec, seed: int, epoch: float) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.epoch = epoch
        self.busy_until = 0.0
        every = spec.new_table_every_days
        self.next_new_table = spec.start_s + every * DAY if every else None
        self.steps_left = 0
        self.replica = 0  # the replica making the current normal call
        self.last_replica = 0  # the replica that made the latest call, normal or not
        self.n = 0
        self.switch: tuple[float, str] | None = None  # (from, model): the same calls, at another model

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
        return max(rate * self.scale(t), 1e-5)

    def scale(self, t: float) -> float:
        """The autoscaler's traffic multiplier: ramps to x3, holds, ramps back."""
        if self.spec.autoscale is None:
            return 1.0
        start, ramp, hold = self.spec.autoscale
        if t < start or t > start + 2 * ramp + hold:
            return 1.0
        up = min(1.0, (t - start) / ramp, (start + 2 * ramp + hold - t) / ramp)
        return 1.0 + 2.0 * up

    def next_time(self, t: float) -> float:
        if self.steps_left > 0:  # the next step of the task in hand
            self.steps_left -= 1
            return t + self.rng.uniform(0.3, 2.5)
        self.steps_left = int(self.rng.expovariate(1 / (STEPS_PER_TASK - 1)))
        return t + self.rng.expovariate(self.rate_per_s(t) / STEPS_PER_TASK)

    def calls(self, t: float) -> list[SpanRecord]:
        s, rng = self.spec, self.rng
        self.replica = rng.randrange(len(s.replica_skews))
        tool = rng.choice(s.tools) if rng.random() < 0.6 else ""
        table = ""
        if tool in ("sql_query", "fetch_report"):
            table = rng.choice(s.tables)
            if self.next_new_table is not None and t >= self.next_new_table and s.spare_tables:
                table = s.spare_tables.pop(0)
                s.tables = (*s.tables, table)
                self.next_new_table = t + (s.new_table_every_days or 1) * DAY
        elif tool == "http_get":
            table = rng.choice(s.hosts)
        args = str(rng.randrange(100_000))
        rows = int(s.rows_per_read * rng.lognormvariate(0, 0.8)) if table.startswith("db:") else 0
        error = rng.random() < s.error_rate
        out = self.make(t, self.usd(t), tool, args, table, rows, error)
        retry_at = t
        for attempt in range(3 if error and tool else 0):  # legitimate retries of the same call, backing off
            retry_at += 2.0 ** attempt
            error = rng.random() < 0.3
            out += self.make(retry_at, self.usd(retry_at), tool, args, table, rows, error)
            if not error:
                break
        return out

    def usd(self, t: float) -> float:
        deployed = self.spec.deploy_at is not None and t >= self.spec.deploy_at
        return self.spec.usd_per_call * self.rng.lognormvariate(0, TOKEN_SIGMA) * (1.5 if deployed else 1.0)

    def make(self, t: float, usd: float, tool: str, args: str, table: str, rows: int, error: bool,
             model: str | None = None, replica: int | None = None) -> list[SpanRecord]:
        """One LLM call (and the tool call it asked for), timed by the replica's own clock."""
        s = self.spec
        self.n += 1
        replica = self.replica if replica is None else replica
        self.last_replica = replica
        end_ns = int((self.epoch + t + s.replica_skews[replica]) * 1e9)
        common = {"agent_id": s.agent_id, "team": s.team, "environment": s.environment, "owner": "eval",
                  "trace_id": f"{self.n:032x}", "start_ns": end_ns - 1_000_000_000}
        input_tokens, output_tokens = tokens_for(model or s.model, usd)
        if model is None and self.switch is not None and t >= self.switch[0]:
            model = self.switch[1]  # same tokens, another price
        model = model or s.model
        out = [make_record(span_id=f"{self.n:015x}a", end_ns=end_ns, operation="chat", model=model,
                           input_tokens=input_tokens, output_tokens=output_tokens, fingerprint=f"llm:{model}",
                           is_error=error and not tool, error_type="RateLimitError" if error and not tool else "",
                           **common)]
        if tool:
            out.append(make_record(span_id=f"{self.n:015x}b", end_ns=end_ns + 200_000_000,
                                   operation="execute_tool", tool_name=tool, resource=table, rows=rows,
                                   fingerprint=f"tool:{tool}:{args}" if s.args_recorded and args else "",
                                   is_error=error, error_type="TimeoutError" if error else "", **common))
        return out
