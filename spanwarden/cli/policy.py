"""`spanwarden policy`: check a policy file, or have the running service reload its own."""

from __future__ import annotations

from pathlib import Path

import typer

from spanwarden.cli.client import STATE, URL, post

app = typer.Typer(help="Policy tools.", no_args_is_help=True)


@app.command("check")
def check(path: Path = typer.Argument(None, help="policy YAML; default: the shipped policy")) -> None:
    """Validate a policy file; exit 1 with the key and line at fault."""
    from spanwarden.enforcers.policy import Policy, PolicyError

    try:
        policy = Policy.load(path)
    except PolicyError as exc:
        typer.echo(f"INVALID: {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"OK: policy {policy.version}, {len(policy.rules)} rules")


@app.command("reload")
def reload(url: str = URL, state_dir: Path = STATE) -> None:
    """Make the running service reload its policy file (admin); an invalid file is refused, the policy in
    force stays, and both outcomes are audited."""
    typer.echo(f"policy {post(url, '/v1/policy/reload', state_dir)['policy_version']} in force")
