"""On-call commands against a running service: kill, throttle, resume, status."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from spanwarden.cli.client import STATE, URL, get, post
from spanwarden.cli.tables import Column, fitted
from spanwarden.enforcers.actors import readable


def _send(url: str, state_dir: Path, body: dict[str, Any]) -> dict[str, Any]:
    return post(url, "/v1/commands", state_dir, body)


ACTOR = typer.Option(None, help="who you are (default: your login name)")


def _answer(url: str, state_dir: Path, request_id: str, approve: bool, reason: str, for_s: float | None = None,
            always: bool = False) -> None:
    if request_id.startswith("ar-"):  # an access request: a resource, approved for a while or for good
        if approve and for_s is None and not always:
            raise typer.BadParameter("approving access needs --for DURATION or --always")
        answer = post(url, f"/v1/access-requests/{request_id}/answer", state_dir,
                      {"approve": approve, "reason": reason, "for_s": for_s, "always": always})
        a = answer["request"]
        until = f" until {_when(a['until_s'])}" if a.get("until_s") else " for good" if approve else ""
        by = readable(a["answered_by"])
        typer.echo(f"{a['id']}: {a['status']}{until} ({a['agent_id']} → {a['resource']}) by {by}")
        return
    r = post(url, f"/v1/approvals/{request_id}/answer", state_dir, {"approve": approve, "reason": reason})
    may = "may" if approve else "may not"
    typer.echo(f"{r['id']}: {r['status']} ({r['agent_id']} {may} call {r['tool']}) by {readable(r['decided_by'])}")


def _pending(url: str, path: str, state_dir: Path, as_json: bool, columns: tuple[Column, ...],
             row: Callable[[dict[str, Any]], tuple[str, ...]]) -> None:
    """List what waits for a human at `path`: JSON, or a table of `columns` that fits the terminal."""
    pending = get(url, path, state_dir)["pending"]
    if as_json:
        typer.echo(json.dumps(pending))
        return
    console = Console()
    console.print(fitted(columns, [row(r) for r in pending], console.width, more=" (--json has them)"))


def _duration(text: str) -> float:
    """"90s", "30m", "8h", "7d" (or plain seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 8h or 7d") from None


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _scope(agent: str | None, team: str | None, env: str | None, tool: str | None = None,
           model: str | None = None, resource: str | None = None) -> dict[str, str]:
    given = {k: v for k, v in (("agent", agent), ("team", team), ("environment", env), ("tool", tool),
                               ("model", model), ("resource", resource)) if v}
    if not given:
        raise typer.BadParameter("name an AGENT, or --team / --env / --tool / --model")
    return given


TOOL = typer.Option(None, help="only calls of tools matching this pattern (e.g. 'delete_*')")
NEW = typer.Option(False, "--new", help="the agent has not reported yet: decide for it anyway (without this, "
                   "naming an agent the service has never seen does nothing and exits 3)")
MODEL = typer.Option(None, help="only calls to models matching this pattern (e.g. 'gpt-4o*')")


def _report(answer: dict[str, Any]) -> None:
    for d in answer.get("decisions", [answer]):
        calls = f" [{d['scope']}]" if d.get("scope") else ""
        by = readable(d["decided_by"])
        typer.echo(f"{d['agent_id']}{calls}: {d['action']} (decision v{d['version']}) by {by}")


def register(app: typer.Typer) -> None:
    token_app = typer.Typer(help="Named tokens with roles.", no_args_is_help=True)
    app.add_typer(token_app, name="token")

    @token_app.command("add")
    def token_add(name: str, role: str = typer.Option(..., help="agent, viewer, oncall or admin"),
                  agent: list[str] = typer.Option([], help="for an agent token: the agent ids it speaks for"),
                  state_dir: Path = STATE) -> None:
        """Create a token for NAME (unique; 'admin' is the service's own) with ROLE; its SHA-256 goes into
        STATE_DIR/tokens.yaml, the token is printed once. A running service accepts it within a second."""
        from spanwarden.enforcers.roles import Role, add_token

        try:
            chosen = Role[role.upper()]
        except KeyError:
            raise typer.BadParameter("use agent, viewer, oncall or admin", param_hint="--role") from None
        path = state_dir / "tokens.yaml"
        typer.echo(add_token(path, name, chosen, tuple(agent)))
        typer.echo(f"token {name!r} ({chosen.name.lower()}) added to {path}; a running service picks it up "
                   "within a second, no restart needed. The token is shown only this once.", err=True)

    @app.command("kill")
    def kill(agent: str = typer.Argument(None, help="the agent (or use --team / --env)"),
             team: str = typer.Option(None, help="every agent the service knows in this team"),
             env: str = typer.Option(None, help="every agent the service knows in this environment"),
             tool: str = TOOL, model: str = MODEL,
             reason: str = typer.Option(..., help="why (required, audited)"), new: bool = NEW, url: str = URL,
             state_dir: Path = STATE, actor: str = ACTOR) -> None:
        """Halt AGENT (or a team's or environment's agents) now: their guards refuse every LLM and tool call,
        or with --tool/--model only those calls, until resumed."""
        scope = _scope(agent, team, env, tool, model)
        _report(_send(url, state_dir, {"command": "kill", **scope, "reason": reason, "require_known": not new,
                                       "actor": actor or getpass.getuser()}))

    @app.command("throttle")
    def throttle(agent: str = typer.Argument(None, help="the agent (or use --team / --env)"),
                 rate: float = typer.Option(..., help="calls per second allowed"), team: str = typer.Option(None),
                 env: str = typer.Option(None), tool: str = TOOL, model: str = MODEL,
                 reason: str = typer.Option(""), new: bool = NEW, url: str = URL, state_dir: Path = STATE,
                 actor: str = ACTOR) -> None:
        """Limit AGENT (or a team's or environment's agents, or their calls of --tool/--model) to RATE calls
        per second until resumed."""
        _report(_send(url, state_dir, {"command": "throttle", **_scope(agent, team, env, tool, model),
                                       "reason": reason, "rate_per_s": rate, "require_known": not new,
                                       "actor": actor or getpass.getuser()}))

    @app.command("resume")
    def resume(agent: str = typer.Argument(None, help="the agent (or use --team / --env)"),
               team: str = typer.Option(None), env: str = typer.Option(None), tool: str = TOOL,
               model: str = MODEL, resource: str = typer.Option(None, help="lift a denied access request: "
                                                                 "the agent may touch this resource again"),
               reason: str = typer.Option(""), new: bool = NEW, url: str = URL, state_dir: Path = STATE,
               actor: str = ACTOR) -> None:
        """Undo a kill or throttle: exactly what is named (agents, or their --tool/--model/--resource calls) is
        allowed again."""
        _report(_send(url, state_dir, {"command": "resume", **_scope(agent, team, env, tool, model, resource),
                                       "reason": reason, "require_known": not new,
                                       "actor": actor or getpass.getuser()}))

    @app.command("approvals")
    def approvals(url: str = URL, state_dir: Path = STATE, as_json: bool = typer.Option(False, "--json")) -> None:
        """Pending approval requests: agents waiting to call a destructive tool, or to run an operation held by
        what it does (its statement's summary, never a literal) (viewer)."""
        columns = (Column("request"), Column("agent", name=True), Column("tool"), Column("operation", drop=1),
                   Column("waiting since", drop=3), Column("expires", drop=2))
        _pending(url, "/v1/approvals", state_dir, as_json, columns,
                 lambda r: (r["id"], r["agent_id"], r["tool"] or "—", r.get("summary") or "—",
                            _when(r["created_s"]), _when(r["expires_s"])))

    @app.command("requests")
    def access_requests(url: str = URL, state_dir: Path = STATE,
                        as_json: bool = typer.Option(False, "--json")) -> None:
        """Pending access requests: agents that reached for a resource outside their profile (viewer)."""
        columns = (Column("request"), Column("agent", name=True), Column("resource"), Column("since", drop=2),
                   Column("why", drop=1))
        _pending(url, "/v1/access-requests", state_dir, as_json, columns,
                 lambda r: (r["id"], r["agent_id"], r["resource"], _when(r["opened_s"]), r["reason"]))

    @app.command("approve")
    def approve(request_id: str, reason: str = typer.Option(""),
                for_: str = typer.Option(None, "--for", help="access requests: for how long (30m, 8h, 7d)"),
                always: bool = typer.Option(False, "--always", help="access requests: for good"),
                url: str = URL, state_dir: Path = STATE) -> None:
        """Let the held call go (a tool approval), or grant an access request (ar-N): the resource joins the
        agent's profile for --for DURATION or --always (oncall; audited with your name)."""
        _answer(url, state_dir, request_id, True, reason, _duration(for_) if for_ else None, always)

    @app.command("deny")
    def deny(request_id: str, reason: str = typer.Option(..., help="why (audited)"), url: str = URL,
             state_dir: Path = STATE) -> None:
        """Refuse the held call: the agent's guard raises AgentHalted for it; for an access request the
        resource stays blocked for the agent until `resume AGENT --resource R` (oncall; audited)."""
        _answer(url, state_dir, request_id, False, reason)

    @app.command("status")
    def status(url: str = URL, state_dir: Path = STATE, as_json: bool = typer.Option(False, "--json")) -> None:
        """Every agent the service knows, with its decision and latest finding (viewer role or above)."""
        agents = get(url, "/v1/status", state_dir)["agents"]
        if as_json:
            typer.echo(json.dumps(agents))
            return
        console = Console()
        console.print(status_table(agents, console.width))


STATUS_COLUMNS = (Column("agent", name=True), Column("owner", drop=5), Column("env", drop=3), Column("decision"),
                  Column("by", drop=2), Column("for some calls"), Column("$ last hour", drop=6, right=True),
                  Column("latest finding", drop=4), Column("LLM spans without usage", drop=7, right=True))


def status_table(agents: list[dict[str, Any]], width: int) -> Table:
    """`spanwarden status`: one row per agent; at `width` columns, what does not fit is left out (named)."""
    rows = []
    for a in agents:
        d, f = a["decision"], a["last_finding"]
        scoped = "\n".join(f"{s['action']} {s['scope']} (by {readable(s['decided_by'])})"
                            for s in a.get("scoped", []))
        spend = a.get("spend_usd_last_hour")
        rows.append((a["agent"], a["owner"], a["environment"], d["action"], readable(d["decided_by"]), scoped,
                     "" if spend is None else f"{spend:,.4f}" if spend < 1 else f"{spend:,.2f}",
                     f"{f['detector']}/{f['kind']} {f['severity']}" if f else "",
                     str(a.get("llm_spans_without_usage") or "")))
    return fitted(STATUS_COLUMNS, rows, width, more=" (--json has them)")
