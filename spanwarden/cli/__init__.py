"""The `spanwarden` command line."""

from __future__ import annotations

import typer

from spanwarden.cli import (
    audit,
    bench,
    datadog,
    demo,
    errors,
    evaluate,
    incident,
    oncall,
    policy,
    profile,
    serve,
    top,
    worker,
)

app = typer.Typer(help="spanwarden: learned per-agent baselines and warn/throttle/halt for AI agents. "
                  "Add --debug to any command for a traceback on failure.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("top")(top.top)
app.command("incident")(incident.incident)
app.command("profile")(profile.profile)
app.command("demo")(demo.demo)
app.command("eval")(evaluate.evaluate)
app.add_typer(bench.app, name="bench")
app.add_typer(audit.app, name="audit")
app.add_typer(policy.app, name="policy")
app.add_typer(datadog.app, name="datadog")
oncall.register(app)




def main() -> None:
    """The `spanwarden` command: every failure a user can cause is one line (`--debug`: the traceback)."""
    raise SystemExit(errors.run(app))
