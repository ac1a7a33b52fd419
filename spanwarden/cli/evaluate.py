"""`spanwarden eval`: detection quality on the labelled scenario suite."""

from __future__ import annotations

import json
from typing import Any

import typer

CONTRACT = ("per_detector", "incidents", "detected", "recall", "precision", "false_halts_per_agent_day",
            "runaway_usd_after_onset", "runaway_s_to_halt", "model_switch_usd_after_onset")


def evaluate(
    as_json: bool = typer.Option(False, "--json", help="end with the figures as one JSON line"),
    seed: int = typer.Option(1, help="fleet, workload and incident seed"),
    agents: int = typer.Option(100, min=16, max=2000),
    days: float = typer.Option(7.0, min=2.0, max=60.0),
    incidents_per_kind: int = typer.Option(2, min=1, max=20),
    explain: bool = typer.Option(False, "--explain", help="list every false alert: when, which agent (and what "
                                 "its normal work is like), and the detector's reason"),
) -> None:
    """Run a seeded, realistic fleet (bursty tasks, replicas with skew, x3 autoscaling, deploys, heavy-tailed
    tokens, one-tool agents without arguments, legitimate retries and new tables) with twelve kinds of injected
    incident, its spans through OTLP into the production pipeline; report precision, recall and time to detect
    per detector, false halts, and what the sudden runaway and the model switch cost after onset."""
    from spanwarden.evaluation.suite import EvalConfig, run

    result = run(EvalConfig(seed=seed, agents=agents, days=days, incidents_per_kind=incidents_per_kind))
    typer.echo(f"{agents} agents x {days:g} days, {result['_records']:,} spans in {result['_wall_s']}s; "
               f"{result['detected']}/{result['incidents']} incidents detected; recall {result['recall']}, "
               f"precision {result['precision']}, false halts/agent-day {result['false_halts_per_agent_day']}",
               err=as_json)
    for name, figures in result["per_detector"].items():
        typer.echo(f"  {name:14} " + "  ".join(f"{k} {v}" for k, v in figures.items()), err=as_json)
    typer.echo(f"  sudden runaway: halted after {result['runaway_s_to_halt']}s, "
               f"${result['runaway_usd_after_onset']} spent after onset (worst case)", err=as_json)
    typer.echo(f"  model switch: ${result['model_switch_usd_after_onset']} spent after onset (worst case); "
               f"{result['_clamped']} span times clamped", err=as_json)
    if result["missed"]:
        typer.echo(f"  missed: {', '.join(result['missed'])}", err=as_json)
    if result["false_alerts_by_kind"]:
        typer.echo(f"  false alerts: {result['false_alerts_by_kind']}", err=as_json)
    if explain:
        for line in explained(result["_false_alerts"], result["_specs"]):
            typer.echo(line, err=as_json)
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in CONTRACT}))


def explained(alerts: list[Any], specs: dict[str, Any]) -> list[str]:
    """One line per false alert, with what was going on in the agent's normal work at that moment."""
    from spanwarden.evaluation.suite import EPOCH
    from spanwarden.evaluation.workload import DAY

    lines = [f"  {len(alerts)} false alerts:"] if alerts else []
    for f in alerts:
        s, t = specs[f.agent_id], f.time_s - EPOCH
        context = [s.environment, s.model, f"{s.calls_per_min:.2f} calls/min", f"{len(s.replica_skews)} replicas"]
        if s.autoscale and s.autoscale[0] <= t <= s.autoscale[0] + 2 * s.autoscale[1] + s.autoscale[2]:
            context.append("autoscaled")
        if s.batch_hour is not None and 0 <= (t % DAY) / 3600 - s.batch_hour < s.batch_minutes / 60:
            context.append("batch job")
        if s.deploy_at is not None and t >= s.deploy_at:
            context.append("after its deploy")
        if t - s.start_s < DAY:
            context.append("first day")
        lines.append(f"    day {t / DAY:.2f} {f.agent_id} ({', '.join(context)}): {f.detector}/{f.kind} "
                     f"{f.severity.label}: {f.reason}")
    return lines
