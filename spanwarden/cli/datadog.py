"""`spanwarden datadog push|record`: dashboards and monitors as code, and a local stand-in for Datadog."""

from __future__ import annotations

import json
import os
import time

import typer

from spanwarden.cli.errors import CliError

app = typer.Typer(help="Datadog: push dashboards and monitors; record what would be sent.", no_args_is_help=True)


@app.command("push")
def push(
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would be sent; contact nothing"),
    host: str = typer.Option(None, envvar="SPANWARDEN_DATADOG_HOST",
                             help="Datadog API base URL [default from DD_SITE]"),
) -> None:
    """Create or update spanwarden's dashboards and monitors (DD_API_KEY and DD_APP_KEY); twice changes
    nothing the second time."""
    from datadog_api_client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from spanwarden.dashboards import push as pushing
    from spanwarden.dashboards.datadog_exporter import datadog_configuration

    if dry_run:
        for change, body in pushing.dry_run():
            typer.echo(f"# {change.kind}: {change.name}")
            typer.echo(json.dumps(body, indent=2))
        return
    missing = [k for k in ("DD_API_KEY", "DD_APP_KEY") if not os.environ.get(k)]
    if missing:
        raise CliError(f"datadog push needs {' and '.join(missing)} (an API key, and an application key allowed "
                       "to write dashboards and monitors); --dry-run prints what would be sent")
    configuration = datadog_configuration(host, max_retries=1, backoff_s=1.0)
    try:
        changes = pushing.push(configuration)
    except ApiException as exc:
        hint = " check DD_API_KEY, DD_APP_KEY and DD_SITE" if exc.status in (401, 403) else ""
        raise CliError(f"Datadog refused the push ({exc.status} {exc.reason}) at {configuration.host}:{hint}"
                       ) from None
    except (HTTPError, OSError) as exc:
        raise CliError(f"cannot reach Datadog at {configuration.host} ({exc.__class__.__name__}): check the "
                       "network, DD_SITE or SPANWARDEN_DATADOG_HOST") from None
    for change in changes:
        typer.echo(f"{change.verb:9} {change.kind:9} {change.id:>12}  {change.name}")


@app.command("record")
def record(
    port: int = typer.Option(8126, help="port on 127.0.0.1"),
    api_key: str = typer.Option("local-api-key", help="the DD_API_KEY it accepts"),
    app_key: str = typer.Option("local-app-key", help="the DD_APP_KEY it accepts"),
    seconds: float = typer.Option(3600.0, min=1, help="stop after this long"),
) -> None:
    """Serve a stand-in for Datadog's API on loopback that checks and records what it is sent (metrics,
    events, logs, dashboards, monitors), printing a line per request."""
    from spanwarden.dashboards.recording_server import RecordingDatadog
    from spanwarden.server.listen import bind

    bind("127.0.0.1", port, "--port").close()  # a busy port is one line (the server binds it again at once)
    server = RecordingDatadog(api_key=api_key, app_key=app_key)
    server.start_on(port)
    typer.echo(f"recording Datadog API on {server.url} (DD_API_KEY={api_key} DD_APP_KEY={app_key}); Ctrl-C stops",
               err=True)
    seen, deadline = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            for request in server.requests[seen:]:
                size = len(request.body) if isinstance(request.body, list) else len((request.body or {}).get(
                    "series", [])) or 1
                typer.echo(f"{request.method} {request.path} ({size} item{'s' if size != 1 else ''})")
            seen = len(server.requests)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
