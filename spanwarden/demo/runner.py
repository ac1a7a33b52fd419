"""Runs the demo: the embedded service on loopback, the simulated fleet exporting OTLP to it, a simulated
clock compressing hours into seconds, and the outcome read back from the audit log — the record of what
spanwarden actually saw and did, not what the simulator intended."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from spanwarden.collector.pricing import PriceTable
from spanwarden.demo.fleet import Fleet, build_fleet
from spanwarden.demo.sim_agent import SimAgent
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.audit_log import read_entries, verify
from spanwarden.enforcers.decision import Action
from spanwarden.enforcers.roles import Role, add_token
from spanwarden.settings import Settings

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC).timestamp()
CONSOLE_USER = "demo-oncall"  # the named oncall token the demo prints, to sign in to the console


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 7
    agents: int = 24
    duration_s: float = 3 * 3600.0
    history_tick_s: float = 30.0  # coarse ticks while nothing is expected to happen
    live_tick_s: float = 1.0  # fine ticks from shortly before the first incident
    state_dir: Path | None = None
    datadog_host: str | None = None  # export to this Datadog API (e.g. `spanwarden datadog record`)
    oncall_answers: bool = True  # the simulated on-call engineer denies access requests (off: they wait)
    port: int = 0  # the service's (and console's) port on 127.0.0.1; 0 picks a free one


@dataclass
class DemoOutcome:
    summary: dict[str, Any]
    wall_s: float
    spans: int
    audit_path: Path
    timeline: list[str] = field(default_factory=list)
    agents: list[SimAgent] = field(default_factory=list)  # closed; what each did stays readable


def run_demo(config: DemoConfig, on_tick: Callable[[float, list[SimAgent], EmbeddedService], None]
             | None = None, on_start: Callable[[str, str], None] | None = None,
             before_stop: Callable[[EmbeddedService, DemoOutcome], None] | None = None) -> DemoOutcome:
    """`on_start(console_url, token)` once the service listens (the token signs in to the console as
    `demo-oncall`); `before_stop(service, outcome)` after the run, while the service and console still
    serve (the outcome is what the run did, before anyone answers in the console)."""
    state_dir = config.state_dir or Path(tempfile.mkdtemp(prefix="spanwarden-demo-"))
    settings = Settings(port=config.port, state_dir=state_dir, audit_fsync="never",
                        datadog_export="on" if config.datadog_host else "off", datadog_host=config.datadog_host,
                        datadog_flush_s=2.0)
    now = {"t": 0.0}
    console_token = add_token(settings.tokens_path, CONSOLE_USER, Role.ONCALL, replace=True)  # a re-run: a new one
    service = EmbeddedService(settings, clock=lambda: START + now["t"])  # the service lives in simulated time
    oncall = OnCall(service, settings)
    port = service.start_in_thread()
    endpoint = f"http://127.0.0.1:{port}"
    if on_start is not None:
        on_start(f"{endpoint}/", console_token)
    fleet = build_fleet(config.seed, config.agents, config.duration_s)
    prices = PriceTable.load()
    by_agent = {i.agent_id: i for i in fleet.incidents}
    agents = [SimAgent(p, endpoint, prices, config.seed * 1000 + n, by_agent.get(p.agent_id), START,
                       new_table_from_s=0.6 * config.duration_s)
              for n, p in enumerate(fleet.agents)]
    started = time.perf_counter()
    spans, completed = 0, False
    try:
        live_from = min(i.onset_s for i in fleet.incidents) - 300
        t = 0.0
        while t < config.duration_s:
            tick = config.history_tick_s if t < live_from else config.live_tick_s
            spans += _tick(agents, t, min(t + tick, config.duration_s))
            t += tick
            now["t"] = t
            if config.oncall_answers:
                oncall.answer(START + t)
            if on_tick is not None:
                on_tick(t, agents, service)
        completed = True
    finally:
        for agent in agents:
            agent.close()
        if not completed:
            service.stop()
    wall = time.perf_counter() - started
    try:
        outcome = DemoOutcome(summarise(fleet, agents, settings.audit_path), wall, spans, settings.audit_path,
                              timeline=oncall.said, agents=agents)
        if before_stop is not None:
            before_stop(service, outcome)
    finally:
        service.stop()
    return outcome


class OnCall:
    """The demo's on-call engineer: answers access requests after a while, over the real HTTP API, denying
    what the agent should not touch (in the demo, every request comes from the exfiltrating agent)."""

    ANSWER_AFTER_S = 30.0

    def __init__(self, service: EmbeddedService, settings: Settings) -> None:
        self.service = service
        self.token = service.token
        self.said: list[str] = []

    def answer(self, now_s: float) -> None:
        base = f"http://127.0.0.1:{self.service.port}"
        for request in self.service.call(self.service.pipeline.access.pending):
            if now_s - request.opened_s < self.ANSWER_AFTER_S:
                continue
            requests.post(f"{base}/v1/access-requests/{request.id}/answer", timeout=10,
                          headers={"Authorization": f"Bearer {self.token}"},
                          json={"approve": False, "reason": f"{request.agent_id} has no business in "
                                f"{request.resource}"})
            self.said.append(f"on-call denied {request.id}: {request.agent_id} → {request.resource}")


def _tick(agents: list[SimAgent], t0: float, t1: float) -> int:
    emitted = 0
    for agent in agents:
        made = agent.step(t0, t1)
        if made:
            agent.flush()
            emitted += made
    if emitted:
        time.sleep(0.003)  # let decisions reach the guards' long-polls before the next tick
    return emitted


def summarise(fleet: Fleet, agents: list[SimAgent], audit_path: Path) -> dict[str, Any]:
    """The demo's contract JSON, from the audit log."""
    decisions: dict[str, list[dict[str, Any]]] = {}
    findings: dict[str, list[float]] = {}
    for _, entry in read_entries(audit_path):
        if isinstance(entry, Exception):
            continue
        if entry.kind == "decision":
            decisions.setdefault(entry.agent.id, []).append({**entry.data, "actor": entry.actor})
        elif entry.kind == "finding":
            findings.setdefault(entry.agent.id, []).append(entry.time_s)
    sims = {a.profile.agent_id: a for a in agents}
    incidents = []
    for incident in fleet.incidents:
        onset = START + incident.onset_s
        acted = [d for d in decisions.get(incident.agent_id, []) if d["issued_s"] >= onset
                 and d["action"] != Action.ALLOW.value]
        first = min(acted, key=lambda d: d["issued_s"]) if acted else None
        strongest = max(acted, key=lambda d: Action(d["action"]).rank) if acted else None
        incidents.append({
            "agent": incident.agent_id,
            "kind": incident.kind,
            "detected": any(f >= onset for f in findings.get(incident.agent_id, [])),
            "action": strongest["action"] if strongest else None,
            "seconds_to_action": round(first["issued_s"] - onset, 2) if first else None,
            "usd_after_onset": round(sims[incident.agent_id].spend_after_onset, 2),
        })
    onsets = {i.agent_id: START + i.onset_s for i in fleet.incidents}
    false_actions = [  # the service's own decisions: a person's kill (console, CLI) is no false alarm
        {"agent": agent_id, "action": d["action"]}
        for agent_id, items in sorted(decisions.items()) for d in items
        if d["action"] != Action.ALLOW.value and d["issued_s"] < onsets.get(agent_id, float("inf"))
        and not str(d.get("decided_by") or d["actor"]).startswith("human:")
    ]
    check = verify(audit_path)
    return {"agents": len(fleet.agents), "incidents": incidents, "false_actions": false_actions,
            "audit_entries": check.entries, "audit_verified": check.ok}
