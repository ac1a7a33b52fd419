"""Injected incidents for the evaluation suite: what an agent does, on top of (or instead of) its normal work,
from onset."""

from __future__ import annotations

import random
from dataclasses import dataclass

from spanwarden.collector.span_record import SpanRecord
from spanwarden.evaluation.workload import PRICES, NormalWork, tokens_for

SENSITIVE = ("db:postgresql:hr.salaries_pii", "db:postgresql:crm.customers_pii", "db:postgresql:pay.payment_cards",
             "db:postgresql:auth.credentials", "db:postgresql:hr.ssn_registry", "db:postgresql:vault.secrets")
SWITCH_MODEL = "claude-opus-4-1"  # ~100x the price of the cheap models the switched agents use
SWITCH_USD_PER_HOUR = 12.0  # what the switched agent spends: under any sane static ceiling

# kind -> (duration s, the detectors expected to catch it)
KINDS: dict[str, tuple[float, frozenset[str]]] = {
    "runaway_loop": (1800.0, frozenset({"cost_velocity", "runaway_loop"})),
    "cost_creep": (3 * 3600.0, frozenset({"cost_velocity"})),
    "sensitive_burst": (120.0, frozenset({"data_access"})),
    "slow_enumeration": (2400.0, frozenset({"data_access"})),
    "error_storm": (1200.0, frozenset({"error_burst"})),
    "retry_storm": (900.0, frozenset({"error_burst", "runaway_loop"})),
    "alternating_runaway": (1200.0, frozenset({"runaway_loop"})),  # cheap: a loop, not a spend spike
    "exfil_volume": (900.0, frozenset({"data_access"})),
    "model_switch": (3 * 3600.0, frozenset({"cost_velocity"})),  # same calls, a model ~100x the price
    "same_args_loop": (1200.0, frozenset({"runaway_loop"})),  # one of its usual tools, same arguments
    "replica_loop": (1200.0, frozenset({"runaway_loop"})),  # one replica of several stuck on one call
    "exfil_post": (900.0, frozenset({"data_access"})),  # a sensitive read, then posts to a new host
}
# Incidents that change the agent's own calls instead of adding calls (the normal work carries them).
IN_PLACE = frozenset({"model_switch"})


@dataclass(frozen=True)
class Incident:
    agent_id: str
    kind: str
    onset_s: float

    @property
    def end_s(self) -> float:
        return self.onset_s + KINDS[self.kind][0]

    @property
    def expected(self) -> frozenset[str]:
        return KINDS[self.kind][1]


def eligible(kind: str, work: NormalWork) -> bool:
    """Whether an agent can have this incident: loops of the same arguments need recorded arguments, a replica
    loop several replicas, a model switch a cheap model."""
    spec = work.spec
    if kind in ("same_args_loop", "replica_loop", "alternating_runaway", "retry_storm"):
        return spec.args_recorded and (kind != "replica_loop" or len(spec.replica_skews) >= 3)
    if kind == "model_switch":
        return spec.model in ("gpt-4o-mini", "mistral-small", "gemini-2.5-flash", "gpt-5-mini")
    return True


def prepare(incident: Incident, work: NormalWork) -> None:
    """Shape the agent's normal work for an incident: the model switch makes the same calls with the same tokens
    at a model ~100x the price from onset (~$12/hour); the agent that posts out what it read reads a sensitive
    table as part of its normal work."""
    if incident.kind == "exfil_post" and not work.spec.sensitive_tables:
        work.spec.tables = (*work.spec.tables, f"db:postgresql:{work.spec.team}.customers_pii")
    if incident.kind == "model_switch":
        hourly_calls = work.spec.calls_per_min * 60
        work.spec.usd_per_call = SWITCH_USD_PER_HOUR / max(hourly_calls, 1e-3) * _price_ratio(work.spec.model)
        work.switch = (incident.onset_s, SWITCH_MODEL)


def _price_ratio(model: str) -> float:
    """The cost of the same tokens at `model` over at the switched-to model."""
    inp, out = tokens_for(model, 1.0)
    switched, _ = PRICES.cost(SWITCH_MODEL, inp, out, 0)
    return 1.0 / switched


class IncidentWork:
    """The extra calls an incident makes; the same `next_time`/`calls` shape as normal work."""

    def __init__(self, incident: Incident, normal: NormalWork, seed: int) -> None:
        self.incident = incident
        self.normal = normal
        self.rng = random.Random(seed)
        self.count = 0
        spec = normal.spec
        self.loop_tool = max(spec.tools, key=lambda tool: (tool != "send_email", tool))
        self.loop_replica = self.rng.randrange(len(spec.replica_skews))
        self.host = f"http:drop-{self.rng.randrange(10**6)}.example.net"

    def rate_per_s(self, t: float) -> float:
        kind = self.incident.kind
        base = self.normal.rate_per_s(t)
        return {
            "runaway_loop": 5.0, "cost_creep": max(base, 0.02), "sensitive_burst": 0.1,
            "slow_enumeration": 1 / 120, "error_storm": max(3 * base, 0.2), "retry_storm": 1.0,
            "alternating_runaway": 3.0, "exfil_volume": 0.05, "model_switch": 0.0, "same_args_loop": 0.3,
            "replica_loop": 0.4, "exfil_post": 1 / 30,
        }[kind]

    def next_time(self, t: float) -> float:
        rate = self.rate_per_s(t)
        if rate <= 0:
            return float("inf")
        return max(t, self.incident.onset_s) + self.rng.expovariate(rate)

    def calls(self, t: float) -> list[SpanRecord]:
        kind, n, spec, rng = self.incident.kind, self.normal, self.normal.spec, self.rng
        self.count += 1
        replica = rng.randrange(len(spec.replica_skews))
        if kind == "runaway_loop":
            # The same call, on the agent's own model, $0.15 each (about $45/min).
            return n.make(t, 0.15, "search_docs", "same", "", 0, False, replica=replica)
        if kind == "cost_creep":  # e.g. a context that keeps growing: ends at 20x its usual spend, >= $1/min
            final_usd_per_s = max(20 * spec.usd_per_call * spec.calls_per_min / 60, 1 / 60)
            progress = (t - self.incident.onset_s) / KINDS[kind][0]
            usd = progress * final_usd_per_s / self.rate_per_s(t)
            return n.make(t, usd, "", "", "", 0, False, replica=replica)
        if kind == "sensitive_burst":
            return n.make(t, spec.usd_per_call, "sql_query", str(self.count), SENSITIVE[self.count % 6], 50, False,
                          replica=replica)
        if kind == "slow_enumeration":
            table = f"db:postgresql:{spec.team}.scan_{self.count}_{spec.agent_id}"
            return n.make(t, spec.usd_per_call, "sql_query", str(self.count), table, 10, False, replica=replica)
        if kind == "error_storm":
            tool = rng.choice(spec.tools)
            return n.make(t, spec.usd_per_call, tool, str(rng.randrange(10**6)), "", 0, rng.random() < 0.8,
                          replica=replica)
        if kind == "retry_storm":
            return n.make(t, spec.usd_per_call * 0.1, "http_get", "same-request", "", 0, rng.random() < 0.95,
                          replica=replica)
        if kind == "alternating_runaway":
            tool = ("plan_step", "check_step")[self.count % 2]
            return n.make(t, 0.004, tool, "same", "", 0, False, model="gpt-4o-mini", replica=replica)
        if kind == "same_args_loop":
            return n.make(t, spec.usd_per_call, self.loop_tool, "stuck", "", 0, False, replica=replica)
        if kind == "replica_loop":
            return n.make(t, spec.usd_per_call, self.loop_tool, f"stuck-{self.loop_replica}", "", 0, False,
                          replica=self.loop_replica)
        if kind == "exfil_post":
            if self.count == 1:  # read its sensitive table, then post it out
                return n.make(t, spec.usd_per_call, "sql_query", "dump", spec.sensitive_tables[0],
                              int(spec.rows_per_read * 10), False, replica=replica)
            return n.make(t, spec.usd_per_call, "http_post", str(self.count), self.host, 0, False, replica=replica)
        table = rng.choice(spec.tables)  # exfil_volume: bulk reads of its usual tables
        return n.make(t, spec.usd_per_call, "sql_query", str(self.count), table, int(spec.rows_per_read * 3000),
                      False, replica=replica)
