"""`spanwarden profile AGENT`: what the agent normally touches, as learned — and pinning a reviewed profile
("this is what this agent may do"), after which drift from it is a finding."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spanwarden.cli.client import STATE, URL, get, post
from spanwarden.cli.errors import CliError
from spanwarden.enforcers.actors import readable


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def profile(agent: str = typer.Argument(..., help="the agent"),
            as_json: bool = typer.Option(False, "--json", help="the profile as JSON (for review tooling)"),
            pin: bool = typer.Option(False, "--pin", help="pin the learned profile as reviewed (admin)"),
            pin_file: Path = typer.Option(None, help="pin this reviewed profile (JSON, as --json prints it)"),
            reason: str = typer.Option("", help="why it is pinned (required with --pin/--pin-file)"),
            url: str = URL, state_dir: Path = STATE) -> None:
    """Resources (with first-seen times), tools, models, spend rate and error rate as learned, approvals and
    who gave them, the pinned profile and the drift from it."""
    if pin or pin_file:
        body: dict[str, object] = {"reason": reason}
        if pin_file:
            body["profile"] = _reviewed(pin_file)
        pinned = post(url, f"/v1/profile/{agent}/pin", state_dir, body)
        typer.echo(f"pinned {agent}: {len(pinned['resources'])} resources, {len(pinned['tools'])} tools, "
                   f"{len(pinned['models'])} models (by {readable(pinned['pinned_by'])})")
        return
    shown = get(url, f"/v1/profile/{agent}", state_dir)
    if as_json:
        typer.echo(json.dumps(shown))
        return
    console = Console()
    console.print(f"[bold]{agent}[/] — owner {shown['owner'] or '?'}, team {shown['team'] or '?'}, "
                  f"{shown['environment'] or '?'}; ${shown['spend_usd_last_hour']:.2f} in the last hour; "
                  f"error rate {shown['error_rate'] if shown['error_rate'] is not None else '—'}")
    for title, items, count in (("resources", shown["resources"], "uses"), ("tools", shown["tools"], "calls"),
                                ("models", shown["models"], "calls")):
        table = Table(title, count, "first seen", title_justify="left")
        for name, seen in items.items():
            table.add_row(name, str(int(seen[count])), _when(seen["first_seen_s"]))
        console.print(table)
    for approval in shown["approvals"]:
        console.print(f"approved: {approval['tool']} by {readable(approval['by'])} at {_when(approval['time_s'])}")
    if shown["pinned"]:
        pinned_by = readable(shown["pinned"]["pinned_by"])
        console.print(f"pinned by {pinned_by} at {_when(shown['pinned']['pinned_s'])}; "
                      f"drift: {shown['drift_from_pinned']}")


def _reviewed(path: Path) -> object:
    """The reviewed profile in `path` (as `profile --json` prints it), or a one-line error."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"--pin-file {path}: {exc.strerror or exc}") from None
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--pin-file {path} is not JSON ({exc}): export one with `spanwarden profile AGENT "
                       "--json`, edit it, and pin that") from None
    if not isinstance(profile, dict):
        raise CliError(f"--pin-file {path} holds a JSON {type(profile).__name__}, not the object "
                       "`spanwarden profile AGENT --json` prints")
    return profile
