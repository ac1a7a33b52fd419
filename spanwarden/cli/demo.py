"""`spanwarden demo`: the whole loop on a simulated fleet."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer


def demo(
    as_json: bool = typer.Option(False, "--json", help="end with the outcome as one JSON line"),
    seed: int = typer.Option(7, help="fleet and workload seed"),
    agents: int = typer.Option(24, min=4, max=500, help="fleet size"),
    hours: float = typer.Option(3.0, min=1.5, max=48, help="simulated hours"),
    state_dir: Path = typer.Option(None, help="keep the service's state (audit log) here; default a temp dir"),
    datadog: str = typer.Option(None, help="also export to this Datadog API base URL (DD_API_KEY/DD_APP_KEY "
                                "apply), e.g. a local `spanwarden datadog record` or https://api.datadoghq.eu"),
) -> None:
    """Start the embedded service and a simulated fleet instrumented with the real OTel SDK, inject a
    runaway loop, unusual data access and an error storm, and report what spanwarden caught."""
    from rich.console import Console

    from spanwarden.demo.runner import DemoConfig, run_demo
    from spanwarden.demo.view import LiveView, print_summary

    logging.basicConfig(level=logging.ERROR)
    console = Console(stderr=as_json)
    config = DemoConfig(seed=seed, agents=agents, duration_s=hours * 3600, state_dir=state_dir,
                        datadog_host=datadog)
    if console.is_terminal:
        with LiveView(console) as view:
            outcome = run_demo(config, view.on_tick)
    else:
        console.print(f"spanwarden demo: {agents} agents, {hours:g} simulated hours ...")
        outcome = run_demo(config)
    print_summary(console, outcome.summary, outcome.wall_s, outcome.spans)
    for line in outcome.timeline:  # what the demo's on-call engineer answered
        console.print(line)
    console.print(f"Audit log kept at {outcome.audit_path}")
    if as_json:
        typer.echo(json.dumps(outcome.summary))
