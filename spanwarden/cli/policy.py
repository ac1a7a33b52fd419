"""`spanwarden policy`: check a policy file, or have the running service reload its own."""

from __future__ import annotations

from pathlib import Path

import requests
import typer

from spanwarden.cli.oncall import STATE, URL, _token

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
    try:
        response = requests.post(f"{url}/v1/policy/reload", timeout=10,
                                 headers={"Authorization": f"Bearer {_token(state_dir)}"})
    except requests.RequestException as exc:
        typer.echo(f"spanwarden: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    if response.status_code != 200:
        typer.echo(f"spanwarden: refused ({response.status_code}): {response.json().get('message')}", err=True)
        raise typer.Exit(1)
    typer.echo(f"policy {response.json()['policy_version']} in force")
