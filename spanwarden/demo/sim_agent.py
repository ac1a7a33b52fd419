"""One simulated agent: a real OpenTelemetry SDK pipeline (TracerProvider, BatchSpanProcessor, OTLP/HTTP
exporter) and a real guard on the control channel, driven on a simulated clock.

Each "call" is an agent step as GenAI instrumentations report it: an `invoke_agent` span around a `chat`
span and, often, an `execute_tool` span that touches a table. Before each step the agent asks its guard;
a halted agent makes no call, a throttled one defers it.
"""

from __future__ import annotations

import json
import math
import random

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from spanwarden.collector.decision_watcher import DecisionWatcher
from spanwarden.collector.guard import AgentHalted, Guard
from spanwarden.collector.pricing import PriceTable
from spanwarden.demo.fleet import AgentProfile, Incident

DB_TOOLS = frozenset({"sql_query", "lookup_customer", "fetch_report"})
NEW_TABLES = ("hr.org_chart", "crm.customers_pii", "finance.payroll", "auth.users", "ledger.card_payments",
              "hr.salaries", "legal.contracts", "crm.export_all")
MEAN_BUSY_S = 600.0


class SimAgent:
    def __init__(self, profile: AgentProfile, endpoint: str, prices: PriceTable, seed: int,
                 incident: Incident | None = None, start_epoch_s: float = 0.0,
                 new_table_from_s: float = float("inf")) -> None:
        self.profile = profile
        self.incident = incident
        self.prices = prices
        self.epoch = start_epoch_s
        self.new_table_from_s = new_table_from_s  # when a legitimate new table enters its work, if it has one
        self.rng = random.Random(seed)
        resource = Resource.create({
            "service.name": profile.agent_id, "service.version": "1.4.2",
            "deployment.environment.name": profile.environment, "spanwarden.owner": profile.owner,
            "spanwarden.team": profile.team,
        })
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=30),
            max_queue_size=200_000, schedule_delay_millis=3_600_000, max_export_batch_size=4096,
        ))
        self.tracer = self.provider.get_tracer("spanwarden.demo")
        self._now = start_epoch_s
        self.watcher = DecisionWatcher(endpoint, profile.agent_id).start()
        self.guard = Guard(profile.agent_id, self.watcher, clock=lambda: self._now)
        self.busy = False
        self.emitted = 0
        self.spend = 0.0
        self.spend_after_onset = 0.0
        self.refused = 0
        self.deferred = 0
        self.new_tables_read = 0
        self.touched: list[tuple[float, str]] = []  # (span end, table) of every table it read

    def step(self, t0: float, t1: float) -> int:
        """Make this agent's calls in simulated seconds [t0, t1); returns the number of spans emitted."""
        dt = t1 - t0
        p = self.profile
        if self.busy and self.rng.random() < dt / MEAN_BUSY_S:
            self.busy = False
        elif not self.busy and self.rng.random() < dt * p.busy_share / (MEAN_BUSY_S * (1 - p.busy_share)):
            self.busy = True
        rate = p.calls_per_min / 60 * (p.busy_factor if self.busy else 1.0) * self._diurnal(t0)
        mode = self._mode(t0)
        if mode == "runaway_cost":
            rate = 4.7
        elif mode == "error_storm":
            rate *= 4
        elif mode == "unusual_access":
            rate = max(rate, 0.1)  # it starts working through tables faster than its usual pace
        before = self.emitted
        for _ in range(self._poisson(rate * dt)):
            self._call(t0 + self.rng.random() * dt, mode)
        return self.emitted - before

    def _mode(self, t: float) -> str:
        if self.incident is not None and t >= self.incident.onset_s:
            return self.incident.kind
        return "normal"

    def _diurnal(self, t: float) -> float:
        hour = ((self.epoch + t) / 3600) % 24
        return 1.0 + 0.4 * math.sin(2 * math.pi * (hour - 9) / 24)

    def _poisson(self, mean: float) -> int:
        if mean > 30:
            return max(0, int(round(self.rng.gauss(mean, math.sqrt(mean)))))
        limit, k, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            k += 1
            product *= self.rng.random()
        return k

    def _call(self, t: float, mode: str) -> None:
        self._now = self.epoch + t
        p, rng = self.profile, self.rng
        model, inp, out = p.model, int(p.input_tokens * rng.lognormvariate(0, 0.5)), int(
            p.output_tokens * rng.lognormvariate(0, 0.4))
        tool = rng.choice(p.tools) if rng.random() < 0.6 else ""
        args: dict[str, object] = {"q": rng.randrange(10_000)}
        table = rng.choice(p.tables) if tool in DB_TOOLS else ""
        if p.late_new_table and t > self.new_table_from_s and tool in DB_TOOLS:
            table = p.late_new_table if rng.random() < 0.3 else table
        error = rng.random() < p.error_rate
        if mode == "runaway_cost":
            model, inp, out, tool, args, table = "gpt-4o", 60_000, 800, "search_docs", {"q": "same"}, ""
        elif mode == "unusual_access" and rng.random() < 0.7:
            tool, table = "sql_query", NEW_TABLES[min(self.new_tables_read, len(NEW_TABLES) - 1)]
            self.new_tables_read += 1
        elif mode == "error_storm":
            error = rng.random() < 0.75
            tool = "http_get" if error else tool
        namespace, _, collection = table.partition(".")
        resource = f"db:postgresql:{namespace}.{collection}" if table else ""
        try:  # the guard sees the call as its spans will describe it (a resource waiting for approval is held)
            if self.guard.admit(tool, model, resource) > 0:
                self.deferred += 1
                return
        except AgentHalted:
            self.refused += 1
            return
        cost = self.prices.cost(model, inp, out, 0)[0]
        self.spend += cost
        if mode != "normal":
            self.spend_after_onset += cost
        self._emit(t, model, inp, out, tool, json.dumps(args), table, error)

    def _emit(self, t: float, model: str, inp: int, out: int, tool: str, args: str, table: str,
              error: bool) -> None:
        start = int((self.epoch + t) * 1e9)
        llm_ns = int(self.rng.uniform(0.4, 3.0) * 1e9)
        tool_ns = int(self.rng.uniform(0.05, 0.8) * 1e9) if tool else 0
        root = self.tracer.start_span(f"invoke_agent {self.profile.agent_id}", start_time=start, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self.profile.agent_id})
        ctx = set_span_in_context(root)
        chat = self.tracer.start_span(f"chat {model}", context=ctx, start_time=start, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": _provider(model),
            "gen_ai.request.model": model, "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out})
        if error and not tool:
            chat.set_status(Status(StatusCode.ERROR))
            chat.set_attribute("error.type", "RateLimitError")
        chat.end(end_time=start + llm_ns)
        self.emitted += 2
        if tool:
            attrs: dict[str, str] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                                     "gen_ai.tool.call.arguments": args}
            if table:
                namespace, collection = table.split(".", 1)
                attrs.update({"db.system.name": "postgresql", "db.namespace": namespace,
                              "db.collection.name": collection})
            span = self.tracer.start_span(f"execute_tool {tool}", context=ctx, start_time=start + llm_ns,
                                          attributes=attrs)
            if error:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", "TimeoutError")
            span.end(end_time=start + llm_ns + tool_ns)
            self.emitted += 1
            if table:
                self.touched.append(((start + llm_ns + tool_ns) / 1e9, table))
        root.end(end_time=start + llm_ns + tool_ns)

    def flush(self) -> None:
        self.provider.force_flush(30_000)

    def close(self) -> None:
        self.watcher.stop()
        self.provider.shutdown()


def _provider(model: str) -> str:
    for prefix, name in (("gpt", "openai"), ("o", "openai"), ("claude", "anthropic"), ("gemini", "gcp.gemini"),
                         ("mistral", "mistral_ai")):
        if model.startswith(prefix):
            return name
    return "unknown"
