"""`spanwarden audit`: check the audit log."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from spanwarden.enforcers.actors import readable

app = typer.Typer(help="Audit log tools.", no_args_is_help=True)
STATE = typer.Option(Path(".spanwarden"), envvar="SPANWARDEN_STATE_DIR", help="state directory")


def parse_time(text: str | None) -> float | None:
    """Epoch seconds or an ISO 8601 time (UTC unless it says otherwise)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither epoch seconds nor an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _log(state_dir: Path) -> Path:
    path = state_dir / "audit.jsonl"
    if not path.exists():
        typer.echo(f"spanwarden: no audit log at {path}", err=True)
        raise typer.Exit(2)
    return path


@app.command("export")
def export_cmd(
    since: str = typer.Option(None, help="from this time (epoch seconds or ISO 8601)"),
    until: str = typer.Option(None, help="up to this time"),
    agent: str = typer.Option(None, help="only this agent"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"),
    state_dir: Path = STATE,
) -> None:
    """Print the entries in a time range, for one agent or all, as JSON lines or CSV."""
    from spanwarden.enforcers.audit_query import AuditReadError, entries, export

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    try:
        typer.echo(export(entries(_log(state_dir), parse_time(since), parse_time(until), agent), fmt), nl=False)
    except AuditReadError as exc:
        typer.echo(f"spanwarden: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("explain")
def explain_cmd(
    agent: str = typer.Argument(..., help="the agent"),
    at: str = typer.Option(None, help="the moment (epoch seconds or ISO 8601); default: the newest entry"),
    state_dir: Path = STATE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The responsibility chain for the decision in force: what the agent did, who it belongs to, which
    policy rule or person acted, and on what evidence (trace/span ids)."""
    from spanwarden.cli.errors import UNKNOWN_AGENT, CliError
    from spanwarden.enforcers.audit_query import AuditReadError, entries, explain

    log_path, moment = _log(state_dir), parse_time(at)
    try:
        if next(iter(entries(log_path, agent=agent)), None) is None:
            raise CliError(f"no audit entries for agent {agent!r} in {log_path}", UNKNOWN_AGENT)
        result = explain(log_path, agent, moment).to_dict()
    except AuditReadError as exc:
        typer.echo(f"spanwarden: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    when = datetime.fromtimestamp(result["at"], UTC).isoformat()
    decision = result["decision"]
    who = result["who"]
    if decision is None:
        typer.echo(f"{agent}: no agent-wide decision recorded up to {when} (allowed by default)")
    else:
        typer.echo(f"{agent} at {when}: {decision['action']} (audit entry {decision['seq']})")
    if who is not None:
        typer.echo(f"  agent:       {_who_line(who)}")
    if decision is None:
        _scoped_lines(result["scoped_in_force"])
        return
    if result["identity"]:
        typer.echo(f"  identity:    from {result['identity']['from']} ({result['identity']['source']})")
    typer.echo(f"  decided by:  {readable(decision['decided_by'])}; {_policy(decision['policy_version'])}")
    typer.echo(f"  reason:      {decision['reason']}")
    for f in result["because_of"]:
        typer.echo(f"  because:     [{f['seq']}] {f['actor']}: {f['reason']}")
        typer.echo(f"               evidence {', '.join(f['evidence']) or '-'}")
    for c in result["human_commands"]:
        typer.echo(f"  human:       [{c['seq']}] {readable(c['actor'])}: {c['reason']}")
    typer.echo("  history:     " + " -> ".join(f"{h['action']}@{h['seq']}" for h in result["decisions_so_far"]))
    _scoped_lines(result["scoped_in_force"])


def _who_line(who: dict[str, str]) -> str:
    """Owner, team, environment and the agent's own version (its spans' service.version), saying plainly
    which of them its spans never reported."""
    fields = (("owner", who["owner"]), ("team", who["team"]), ("environment", who["environment"]),
              ("agent version" if who["version"] else "agent version (service.version)", who["version"]))
    said = ", ".join(f"{name} {value}" for name, value in fields if value)
    unsaid = ", ".join(name for name, value in fields if not value)
    return f"{said}{'; ' if said and unsaid else ''}{f'not reported: {unsaid}' if unsaid else ''}"


def _policy(version: str) -> str:
    return f"policy {version} in force" if version else "the entry records no policy version"


def _scoped_lines(scoped: list[dict[str, Any]]) -> None:
    for d in scoped:
        typer.echo(f"  scoped:      {d['action']} [{d['scope']}] by {readable(d['decided_by'] or d['actor'])} "
                   f"(audit entry {d['seq']}): {d['reason']}")
        for f in d["because_of"]:
            typer.echo(f"    because:   [{f['seq']}] {f['actor']}: {f['reason']}")
            typer.echo(f"               evidence {', '.join(f['evidence']) or '-'}")


@app.command("verify")
def verify_cmd(
    path: Path = typer.Argument(None, help="audit log [default: STATE_DIR/audit.jsonl]"),
    state_dir: Path = typer.Option(Path(os.environ.get("SPANWARDEN_STATE_DIR", ".spanwarden")),
                                   help="state directory [SPANWARDEN_STATE_DIR]"),
    hmac_key: str = typer.Option(None, envvar="SPANWARDEN_AUDIT_HMAC_KEY", help="the key the log is signed with"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Prove nothing was altered, removed, inserted or reordered; exit 1 naming the first bad entry."""
    from spanwarden.enforcers.audit_log import verify

    target = path or state_dir / "audit.jsonl"
    from spanwarden.enforcers.audit_log import head_path, segments

    if not segments(target) and not head_path(target).exists():  # a head without its log: deleted
        typer.echo(f"spanwarden: no audit log at {target}", err=True)
        raise typer.Exit(2)
    result = verify(target, hmac_key.encode() if hmac_key else None)
    if as_json:
        typer.echo(json.dumps({"ok": result.ok, "entries": result.entries, "first_bad_seq": result.first_bad_seq,
                               "first_bad_location": result.first_bad_location, "message": result.message}))
    else:
        typer.echo(("OK: " if result.ok else "TAMPERED: ") + result.message)
    raise typer.Exit(0 if result.ok else 1)


@app.command("acknowledge")
def acknowledge_cmd(
    reason: str = typer.Option(..., help="why the break is accepted (audited)"),
    url: str = typer.Option("http://127.0.0.1:4318", envvar="SPANWARDEN_URL"),
    state_dir: Path = STATE,
) -> None:
    """After a broken audit chain (admin): set the broken log aside for forensics and start a new chain whose
    first entry records the break, you, and your reason. Until then the service refuses spans and commands."""
    from spanwarden.cli.client import post

    moved = post(url, "/v1/audit/acknowledge", state_dir, {"reason": reason})["moved_to"]
    typer.echo(f"broken log set aside as {moved}; a new chain has started")
