"""The labelled evaluation suite behind `spanwarden eval`: a seeded fleet with varied, realistic normal
behaviour (see `workload`) and injected incidents of twelve kinds, its spans sent as the OTel SDK sends them
(`transport`: batched per replica, OTLP-encoded, decoded and normalised by the receiver's code, stamped with
their receive time), through the same pipeline and time bounds as production, with the guard's decisions fed
back (a halted agent stops, a throttled one is paced) after a configurable guard latency, and the guard's model
gate applied before each call (a first call to a model far dearer than the agent's own waits for the on-call,
`collector/model_gate.py`). An on-call answers access requests after five minutes: approved when the resource
is one of the agent's own tables, denied otherwise (a model nobody deployed included).

Scoring: an alert is a finding of warning severity or above. It is true when it names an agent during one of
its incidents (from onset to 10 minutes after the end, in the span time the service sees: the agent's
replicas' clocks may run a few seconds behind, so the window opens that much earlier), false otherwise. A
detector's recall counts the incidents it is expected to catch that it had a chance to see: an incident
another detector had halted within its first minute is left out for a detector that had not alerted by then
(a runaway halted by cost in two seconds never runs long enough to look like a loop). Overall recall counts
incidents caught by any detector.
"""

from __future__ import annotations

import heapq
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from spanwarden.audit_sink import MemoryAuditSink
from spanwarden.collector.model_gate import ALLOWED_FOR_S
from spanwarden.collector.span_record import SpanRecord
from spanwarden.detectors.agent_detectors import DetectorSettings
from spanwarden.detectors.finding import Finding, Severity
from spanwarden.enforcers.decision import Action, Decision
from spanwarden.enforcers.policy import Policy
from spanwarden.evaluation.incidents import IN_PLACE, KINDS, Incident, IncidentWork, eligible, prepare
from spanwarden.evaluation.transport import Transport
from spanwarden.evaluation.workload import DAY, PRICES, NormalWork, random_spec
from spanwarden.event_time import TimeBounds
from spanwarden.pipeline import Pipeline
from spanwarden.settings import Settings

EPOCH = 1_795_305_600.0  # Monday 2026-11-23 00:00 UTC
GRACE_S = 600.0
# The detectors whose findings can alert. `behaviour` is advisory (info findings only), so it is not scored.
# No incident is labelled for `call_volume` (volume alone proves nothing): it is scored on precision only.
DETECTORS = ("cost_velocity", "data_access", "error_burst", "runaway_loop", "call_volume")
ANSWER_AFTER_S = 300.0
MODEL_ALLOWED_FOR_S = ALLOWED_FOR_S
PRODUCTION_BOUNDS = TimeBounds(float(Settings.model_fields["max_lateness_s"].default),
                               float(Settings.model_fields["max_skew_s"].default))


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 1
    agents: int = 100
    days: float = 7.0
    incidents_per_kind: int = 2
    guard_latency_s: float = 1.0
    detectors: DetectorSettings | None = None  # None: the shipped settings
    time_bounds: TimeBounds = PRODUCTION_BOUNDS


@dataclass
class _Agent:
    normal: NormalWork
    incident: IncidentWork | None = None
    pending: list[Decision] = field(default_factory=list)  # issued, not yet at the guard
    decision: Decision | None = None
    last_allowed: float = -1e18
    spend_after_onset: float = 0.0
    models_allowed: dict[str, float] = field(default_factory=dict)  # the guard's model gate: model -> until


def build(config: EvalConfig) -> tuple[list[_Agent], list[Incident]]:
    rng = random.Random(config.seed)
    agents = [_Agent(NormalWork(random_spec(rng, i, config.days), rng.randrange(2**32), EPOCH))
              for i in range(config.agents)]
    kinds = [k for k in KINDS for _ in range(config.incidents_per_kind)]
    if len(kinds) > len(agents):
        raise ValueError(f"{len(kinds)} incidents need at least as many agents")
    incidents = []
    free = rng.sample(agents, len(agents))
    for kind in sorted(kinds, key=lambda k: sum(eligible(k, a.normal) for a in agents)):  # scarcest first
        agent = next((a for a in free if eligible(kind, a.normal)), None)
        if agent is None:
            raise ValueError(f"no agent left that can have a {kind} incident; use more agents")
        free.remove(agent)
        spec = agent.normal.spec
        spec.environment, spec.start_s = "prod", 0.0
        onset = rng.uniform(1.5 * DAY, config.days * DAY - KINDS[kind][0] - GRACE_S)
        incident = Incident(spec.agent_id, kind, round(onset, 1))
        prepare(incident, agent.normal)
        agent.incident = IncidentWork(incident, agent.normal, rng.randrange(2**32))
        incidents.append(incident)
    return agents, incidents


def run(config: EvalConfig) -> dict[str, Any]:
    agents, incidents = build(config)
    by_id = {a.normal.spec.agent_id: a for a in agents}
    findings: list[Finding] = []
    decisions: list[Decision] = []

    def on_decision(d: Decision) -> None:
        decisions.append(d)
        if not d.scope:  # decisions for one resource or tool hold only those calls: not modelled here
            by_id[d.agent_id].pending.append(d)

    pipeline = Pipeline(Policy.load(), MemoryAuditSink(), settings=config.detectors, on_decision=on_decision,
                        on_finding=findings.append, time_bounds=config.time_bounds, prices=PRICES)
    transport = Transport(config.seed, EPOCH, pipeline.process)
    queue: list[tuple[float, int, int, int]] = []
    for i, agent in enumerate(agents):
        heapq.heappush(queue, (agent.normal.next_time(agent.normal.spec.start_s), i, i, 0))
        if agent.incident is not None and agent.incident.incident.kind not in IN_PLACE:
            heapq.heappush(queue, (agent.incident.next_time(agent.incident.incident.onset_s), -i - 1, i, 1))
    end = config.days * DAY
    next_answer = 0.0
    started = time.perf_counter()
    while queue:
        t, tie, i, source = heapq.heappop(queue)
        if t >= end:
            continue
        transport.until(t)
        if t >= next_answer:
            _answer_access(pipeline, by_id, EPOCH + t)
            next_answer = t + 60.0
        agent = agents[i]
        work = agent.normal if source == 0 else agent.incident
        assert work is not None
        if source == 1 and t >= agent.incident.incident.end_s:  # type: ignore[union-attr]
            continue
        verdict = _guard(agent, t, config.guard_latency_s)
        if verdict == "halted":
            continue  # a halted agent makes no more calls (nobody resumes it in the suite)
        if verdict == "go":
            batch = work.calls(t)
            if not _models_go(pipeline, agent, batch, t):
                heapq.heappush(queue, (work.next_time(t), tie, i, source))
                continue  # held before it went out: a first call to a model far dearer than the agent's
            if agent.incident is not None and t >= agent.incident.incident.onset_s:
                agent.spend_after_onset += sum(_usd(r) for r in batch)
            normal = agent.normal
            replica = normal.last_replica
            transport.send(normal.spec.agent_id, replica, normal.spec.replica_skews[replica], batch)
        heapq.heappush(queue, (work.next_time(t), tie, i, source))
    transport.until(end + 60)
    pipeline.advance(EPOCH + end + 60)
    wall = time.perf_counter() - started
    return score(config, agents, incidents, findings, decisions) | {
        "_records": transport.spans, "_wall_s": round(wall, 1), "_clamped": pipeline.arrivals.clamped,
        "_specs": {agent_id: a.normal.spec for agent_id, a in by_id.items()}}


def _models_go(pipeline: Pipeline, agent: _Agent, batch: list[SpanRecord], t: float) -> bool:
    """The guard's model gate (`collector/model_gate.py`): before the first call to a model (and again every
    ALLOWED_FOR_S), ask the service, as the guard's route does, whether it may go."""
    for model in {r.model for r in batch if r.model and not r.tool_name}:
        if agent.models_allowed.get(model, -1.0) > t:
            continue
        if pipeline.model_request(agent.normal.spec.agent_id, model, EPOCH + t) is not None:
            return False  # waits for the on-call (who answers access requests every minute) or was denied
        agent.models_allowed[model] = t + MODEL_ALLOWED_FOR_S
    return True


def _usd(record: SpanRecord) -> float:
    return PRICES.cost(record.model, record.input_tokens, record.output_tokens, 0)[0] if record.model else 0.0


def _answer_access(pipeline: Pipeline, by_id: dict[str, _Agent], now_s: float) -> None:
    """The on-call: after a while, approves an agent's own tables for good and denies anything else."""
    for request in pipeline.access.pending():
        if now_s - request.opened_s < ANSWER_AFTER_S:
            continue
        agent = by_id.get(request.agent_id)
        legitimate = agent is not None and request.resource in agent.normal.spec.tables
        pipeline.answer_access(request.id, legitimate, "eval-oncall", "its own table" if legitimate else
                               "not its business", now_s)


def _guard(agent: _Agent, t: float, latency: float) -> str:
    while agent.pending and agent.pending[0].issued_s - EPOCH + latency <= t:
        agent.decision = agent.pending.pop(0)
    d = agent.decision
    if d is None or not d.in_force(EPOCH + t):
        return "go"
    if d.action is Action.HALT:
        return "halted"
    if d.action is Action.THROTTLE and d.throttle_per_s:
        if t - agent.last_allowed < 1 / d.throttle_per_s:
            return "deferred"
        agent.last_allowed = t
    return "go"


def score(config: EvalConfig, agents: list[_Agent], incidents: list[Incident], findings: list[Finding],
          decisions: list[Decision]) -> dict[str, Any]:
    lead = {a.normal.spec.agent_id: max(abs(s) for s in a.normal.spec.replica_skews) for a in agents}
    windows = {i.agent_id: (EPOCH + i.onset_s - lead[i.agent_id], EPOCH + i.end_s + GRACE_S) for i in incidents}
    alerts = [f for f in findings if f.severity >= Severity.WARNING]

    def true_alert(f: Finding) -> bool:
        w = windows.get(f.agent_id)
        return w is not None and w[0] <= f.time_s <= w[1]

    halts = [d for d in decisions if d.action is Action.HALT]
    halted_early = {i.agent_id for i in incidents if any(
        d.agent_id == i.agent_id and windows[i.agent_id][0] <= d.issued_s <= EPOCH + i.onset_s + 60
        for d in halts)}
    per_detector: dict[str, dict[str, float]] = {}
    for name in DETECTORS:
        mine = [f for f in alerts if f.detector == name]
        tp = sum(map(true_alert, mine))
        expected = [i for i in incidents if name in i.expected
                    and (i.agent_id not in halted_early or _first_alert(mine, i, windows) is not None)]
        delays = [d for i in expected if (d := _first_alert(mine, i, windows)) is not None]
        per_detector[name] = {
            "precision": round(tp / len(mine), 4) if mine else (0.0 if expected else 1.0),
            "recall": round(len(delays) / len(expected), 4) if expected else 1.0,
            "median_s_to_detect": round(statistics.median(delays), 1) if delays else -1.0,
            "p95_s_to_detect": round(_p95(delays), 1) if delays else -1.0,
        }
    detected = [i for i in incidents if _first_alert(alerts, i, windows) is not None]
    false_halts = [d for d in halts if not (d.agent_id in windows
                                            and windows[d.agent_id][0] <= d.issued_s <= windows[d.agent_id][1])]
    runaways = [i for i in incidents if i.kind == "runaway_loop"]
    by_id = {a.normal.spec.agent_id: a for a in agents}
    to_halt = [min((max(0.0, d.issued_s - EPOCH - i.onset_s) for d in halts if d.agent_id == i.agent_id
                    and d.issued_s >= windows[i.agent_id][0]), default=float("inf")) for i in runaways]
    agent_days = sum(max(0.0, config.days * DAY - a.normal.spec.start_s) for a in agents) / DAY
    return {
        "per_detector": per_detector,
        "incidents": len(incidents),
        "detected": len(detected),
        "recall": round(len(detected) / len(incidents), 4) if incidents else 1.0,
        "precision": round(sum(map(true_alert, alerts)) / len(alerts), 4) if alerts else 1.0,
        "false_halts_per_agent_day": round(len(false_halts) / agent_days, 5),
        "runaway_usd_after_onset": round(max((by_id[i.agent_id].spend_after_onset for i in runaways), default=0.0),
                                         2),
        "runaway_s_to_halt": round(max(to_halt, default=0.0), 2),
        "model_switch_usd_after_onset": round(max((by_id[i.agent_id].spend_after_onset for i in incidents
                                                   if i.kind == "model_switch"), default=0.0), 2),
        "missed": [f"{i.kind}:{i.agent_id}" for i in incidents if i not in detected],
        "false_alerts_by_kind": _count(f"{f.detector}/{f.kind}" for f in alerts if not true_alert(f)),
        "_false_alerts": [f for f in alerts if not true_alert(f)],
    }


def _first_alert(alerts: list[Finding], incident: Incident,
                 windows: dict[str, tuple[float, float]]) -> float | None:
    start, stop = windows[incident.agent_id]
    times = [f.time_s for f in alerts if f.agent_id == incident.agent_id and start <= f.time_s <= stop]
    return max(0.0, min(times) - EPOCH - incident.onset_s) if times else None


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
