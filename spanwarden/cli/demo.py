"""`spanwarden demo`: the whole loop on a simulated fleet, watchable in the web console while it runs."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from spanwarden.demo.runner import DemoOutcome
    from spanwarden.embedded.service import EmbeddedService


def demo(
    as_json: bool = typer.Option(False, "--json", help="end with the outcome as one JSON line"),
    seed: int = typer.Option(7, help="fleet and workload seed"),
    agents: int = typer.Option(24, min=4, max=500, help="fleet size"),
    hours: float = typer.Option(3.0, min=1.5, max=48, help="simulated hours"),
    state_dir: Path = typer.Option(None, help="keep the service's state (audit log) here; default a temp dir"),
    datadog: str = typer.Option(None, help="also export to this Datadog API base URL (DD_API_KEY/DD_APP_KEY "
                                "apply), e.g. a local `spanwarden datadog record` or https://api.datadoghq.eu"),
    keep_serving: bool = typer.Option(False, "--keep-serving", help="after the run, keep the service and its "
                                      "web console up (on 127.0.0.1) until Ctrl-C"),
    port: int = typer.Option(0, min=0, max=65535, help="the service's and console's port (0: a free one)"),
    answer: bool = typer.Option(True, "--answer/--no-answer", help="the demo's on-call engineer denies the "
                                "access requests; with --no-answer they wait for you in the console"),
) -> None:
    """Start the embedded service and a simulated fleet instrumented with the real OTel SDK, inject a
    runaway loop, unusual data access and an error storm, and report what spanwarden caught. The console's
    URL and a token to sign in with are printed first."""
    from rich.console import Console

    from spanwarden.demo.runner import DemoConfig, run_demo
    from spanwarden.demo.view import LiveView

    logging.basicConfig(level=logging.ERROR)
    console = Console(stderr=as_json)
    config = DemoConfig(seed=seed, agents=agents, duration_s=hours * 3600, state_dir=state_dir,
                        datadog_host=datadog, oncall_answers=answer, port=port)

    def started(url: str, token: str) -> None:
        console.print(f"Web console: {url}  (sign in with this oncall token: {token})")

    def finished(service: EmbeddedService, outcome: DemoOutcome) -> None:
        if keep_serving:
            report(console, outcome)
            hold(console, service)

    if console.is_terminal:
        with LiveView(console) as view:
            outcome = run_demo(config, view.on_tick, started, finished)
    else:
        console.print(f"spanwarden demo: {agents} agents, {hours:g} simulated hours ...")
        outcome = run_demo(config, on_start=started, before_stop=finished)
    if not keep_serving:
        report(console, outcome)
    if as_json:
        typer.echo(json.dumps(outcome.summary))


def report(console: Console, outcome: DemoOutcome) -> None:
    from spanwarden.demo.view import print_summary

    print_summary(console, outcome.summary, outcome.wall_s, outcome.spans)
    for line in outcome.timeline:  # what the demo's on-call engineer answered
        console.print(line)
    console.print(f"Audit log kept at {outcome.audit_path}")


def hold(console: Console, service: EmbeddedService) -> None:
    """Serve until Ctrl-C (or SIGTERM)."""
    console.print(f"The run is over; the service and console stay up at http://127.0.0.1:{service.port}/ "
                  "— Ctrl-C to stop.")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print("stopping")
