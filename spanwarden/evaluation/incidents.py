"""Injected incidents for the evaluation suite: what an agent does, on top of its normal work, from onset."""

from __future__ import annotations

import random
from dataclasses import dataclass

from spanwarden.collector.span_record import SpanRecord
from spanwarden.evaluation.workload import NormalWork

SENSITIVE = ("db:postgresql:hr.salaries_pii", "db:postgresql:crm.customers_pii", "db:postgresql:pay.payment_cards",
             "db:postgresql:auth.credentials", "db:postgresql:hr.ssn_registry", "db:postgresql:vault.secrets")

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
}


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


class IncidentWork:
    """The extra calls an incident makes; the same `next_time`/`calls` shape as normal work."""

    def __init__(self, incident: Incident, normal: NormalWork, seed: int) -> None:
        self.incident = incident
        self.normal = normal
        self.rng = random.Random(seed)
        self.count = 0

    def rate_per_s(self, t: float) -> float:
        kind = self.incident.kind
        base = self.normal.rate_per_s(t)
        return {
            "runaway_loop": 5.0, "cost_creep": max(base, 0.02), "sensitive_burst": 0.1,
            "slow_enumeration": 1 / 120, "error_storm": max(3 * base, 0.2), "retry_storm": 1.0,
            "alternating_runaway": 3.0, "exfil_volume": 0.05,
        }[kind]

    def next_time(self, t: float) -> float:
        return max(t, self.incident.onset_s) + self.rng.expovariate(self.rate_per_s(t))

    def calls(self, t: float) -> list[SpanRecord]:
        kind, n, spec, rng = self.incident.kind, self.normal, self.normal.spec, self.rng
        self.count += 1
        if kind == "runaway_loop":
            return n.make(t, 0.15, "search_docs", "same", "", 0, False, model="gpt-4o")
        if kind == "cost_creep":  # e.g. a context that keeps growing: ends at 20x its usual spend, >= $1/min
            final_usd_per_s = max(20 * spec.usd_per_call * spec.calls_per_min / 60, 1 / 60)
            progress = (t - self.incident.onset_s) / KINDS[kind][0]
            return n.make(t, progress * final_usd_per_s / self.rate_per_s(t), "", "", "", 0, False)
        if kind == "sensitive_burst":
            return n.make(t, spec.usd_per_call, "sql_query", str(self.count), SENSITIVE[self.count % 6], 50, False)
        if kind == "slow_enumeration":
            return n.make(t, spec.usd_per_call, "sql_query", str(self.count),
                          f"db:postgresql:{spec.team}.scan_{self.count}_{spec.agent_id}", 10, False)
        if kind == "error_storm":
            tool = rng.choice(spec.tools)
            return n.make(t, spec.usd_per_call, tool, str(rng.randrange(10**6)), "", 0, rng.random() < 0.8)
        if kind == "retry_storm":
            return n.make(t, spec.usd_per_call * 0.1, "http_get", "same-request", "", 0, rng.random() < 0.95)
        if kind == "alternating_runaway":
            tool = ("plan_step", "check_step")[self.count % 2]
            return n.make(t, 0.004, tool, "same", "", 0, False, model="gpt-4o-mini")
        table = rng.choice(spec.tables)  # exfil_volume: bulk reads of its usual tables
        return n.make(t, spec.usd_per_call, "sql_query", str(self.count), table, int(spec.rows_per_read * 3000),
                      False)
