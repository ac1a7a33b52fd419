"""`spanwarden incident AGENT`: the blast-radius report (Markdown, or --json), from the state directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from spanwarden.cli.audit import STATE, parse_time
from spanwarden.cli.errors import UNKNOWN_AGENT


def incident(agent: str = typer.Argument(..., help="the agent"),
             since: str = typer.Option(None, help="start here (epoch s or ISO 8601) instead of at the onset of "
                                       "the agent's latest anomaly"),
             as_json: bool = typer.Option(False, "--json", help="one JSON object instead of Markdown"),
             writes: bool = typer.Option(False, "--writes", help="only the writes and destructive operations "
                                         "since the onset (with --json: the list a rollback script needs)"),
             state_dir: Path = STATE) -> None:
    """What the agent touched, spent and broke since it went wrong, the decisions and who acted, with trace
    ids — for a post-incident review."""
    from spanwarden.embedded.incident_report import UnknownAgent, build, markdown, writes_markdown
    from spanwarden.enforcers.audit_query import AuditReadError

    if not (state_dir / "audit.jsonl").exists():
        typer.echo(f"spanwarden: no audit log in {state_dir}", err=True)
        raise typer.Exit(2)
    try:
        report = build(state_dir, agent, parse_time(since))
    except UnknownAgent as exc:
        typer.echo(f"spanwarden: {exc}", err=True)
        raise typer.Exit(UNKNOWN_AGENT) from None
    except (LookupError, AuditReadError) as exc:
        typer.echo(f"spanwarden: {exc}", err=True)
        raise typer.Exit(2) from None
    if writes:
        typer.echo(json.dumps(report["writes"]) if as_json else "\n".join(writes_markdown(report["writes"])))
        return
    typer.echo(json.dumps(report) if as_json else markdown(report))
