"""`spanwarden audit`: check the audit log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

app = typer.Typer(help="Audit log tools.", no_args_is_help=True)


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
    if not target.exists():
        typer.echo(f"spanwarden: no audit log at {target}", err=True)
        raise typer.Exit(2)
    result = verify(target, hmac_key.encode() if hmac_key else None)
    if as_json:
        typer.echo(json.dumps({"ok": result.ok, "entries": result.entries, "first_bad_seq": result.first_bad_seq,
                               "first_bad_line": result.first_bad_line, "message": result.message}))
    else:
        typer.echo(("OK: " if result.ok else "TAMPERED: ") + result.message)
    raise typer.Exit(0 if result.ok else 1)
