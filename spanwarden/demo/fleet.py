"""Who is in the demo fleet: varied, bursty normal agents, and which of them suffer which incident.

Profiles are drawn from a seeded generator so every run of a seed is the same fleet, and different seeds
give different fleets (rates, models, tools, tables, error rates, burstiness all vary).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-5-mini", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-flash",
          "gemini-2.5-pro", "mistral-small", "gpt-4.1-mini")
TEAMS = {
    "support": ("crm.tickets", "crm.accounts", "kb.articles", "crm.contacts"),
    "finance": ("ledger.invoices", "ledger.vendors", "ledger.accounts", "fx.rates"),
    "growth": ("analytics.events", "analytics.campaigns", "crm.leads", "web.pages"),
    "platform": ("ops.deployments", "ops.incidents", "ops.services", "git.repos"),
    "research": ("docs.papers", "docs.notes", "web.pages", "kb.articles"),
}
TOOLS = ("search_docs", "sql_query", "http_get", "send_email", "summarize", "create_ticket", "fetch_report",
         "lookup_customer", "run_check")
OWNERS = ("alice@example.com", "bob@example.com", "chen@example.com", "dana@example.com", "eve@example.com",
          "farid@example.com", "grace@example.com")
ENVIRONMENTS = ("prod", "prod", "prod", "staging", "dev")
INCIDENT_KINDS = ("runaway_cost", "unusual_access", "error_storm")


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    owner: str
    team: str
    environment: str
    model: str
    calls_per_min: float
    input_tokens: int
    output_tokens: int
    tools: tuple[str, ...]
    tables: tuple[str, ...]
    error_rate: float
    busy_factor: float  # call-rate multiplier while in a busy spell
    busy_share: float  # fraction of time spent in busy spells
    late_new_table: str = ""  # a legitimate new (non-sensitive) table it starts using late in the run


@dataclass(frozen=True)
class Incident:
    agent_id: str
    kind: str
    onset_s: float  # simulated seconds from the start of the run


@dataclass
class Fleet:
    agents: list[AgentProfile]
    incidents: list[Incident] = field(default_factory=list)


def build_fleet(seed: int, size: int, duration_s: float) -> Fleet:
    """`size` agents; three prod agents each get one incident, with onsets in the last quarter of the run."""
    if size < len(INCIDENT_KINDS) + 1:
        raise ValueError(f"the fleet needs at least {len(INCIDENT_KINDS) + 1} agents")
    rng = random.Random(seed)
    agents = []
    for i in range(size):
        team = rng.choice(sorted(TEAMS))
        tables = rng.sample(TEAMS[team], rng.randint(2, len(TEAMS[team])))
        spare = [t for t in TEAMS[team] if t not in tables]
        agents.append(AgentProfile(
            agent_id=f"{team}-agent-{i:02d}",
            owner=rng.choice(OWNERS),
            team=team,
            environment="prod" if i < len(INCIDENT_KINDS) else rng.choice(ENVIRONMENTS),
            model=rng.choice(MODELS),
            calls_per_min=round(rng.lognormvariate(0.3, 0.8), 3),
            input_tokens=int(rng.lognormvariate(7.5, 0.8)),
            output_tokens=int(rng.lognormvariate(5.5, 0.6)),
            tools=tuple(rng.sample(TOOLS, rng.randint(2, 4))),
            tables=tuple(tables),
            error_rate=round(rng.uniform(0.002, 0.03), 4),
            busy_factor=round(rng.uniform(1.5, 4.0), 2),
            busy_share=round(rng.uniform(0.05, 0.25), 2),
            late_new_table=spare[0] if spare and rng.random() < 0.3 else "",
        ))
    order = list(range(len(INCIDENT_KINDS)))
    rng.shuffle(order)
    incidents = [
        Incident(agents[order[k]].agent_id, kind, round(duration_s * rng.uniform(0.8, 0.88)))
        for k, kind in enumerate(INCIDENT_KINDS)
    ]
    return Fleet(agents, incidents)
