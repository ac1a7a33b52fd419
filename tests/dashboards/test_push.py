"""`datadog push` with the real client against the recording server: creates, then changes nothing; puts
back what someone edited by hand; `--dry-run` contacts nothing."""

from __future__ import annotations

from typer.testing import CliRunner

from spanwarden.cli import app
from spanwarden.dashboards.datadog_exporter import datadog_configuration
from spanwarden.dashboards.push import dashboards, monitors, push
from spanwarden.dashboards.recording_server import RecordingDatadog


def test_pushing_twice_changes_nothing_the_second_time(datadog: RecordingDatadog) -> None:
    first = push(datadog_configuration(datadog.url))
    assert {c.verb for c in first} == {"create"} and len(first) == len(dashboards()) + len(monitors())
    writes = [r for r in datadog.requests if r.method in ("POST", "PUT")]
    assert all(r.headers["DD-APPLICATION-KEY"] == datadog.app_key for r in writes)
    second = push(datadog_configuration(datadog.url))
    assert {c.verb for c in second} == {"unchanged"}
    assert [r for r in datadog.requests if r.method in ("POST", "PUT")] == writes  # no write the second time


def test_a_hand_edited_dashboard_and_monitor_are_put_back(datadog: RecordingDatadog) -> None:
    push(datadog_configuration(datadog.url))
    board = next(iter(datadog.dashboards.values()))
    board["widgets"] = board["widgets"][:1]
    monitor = next(iter(datadog.monitors.values()))
    monitor["query"] = monitor["query"].replace("> 0", "> 100")
    changes = {(c.kind, c.verb) for c in push(datadog_configuration(datadog.url))}
    assert ("dashboard", "update") in changes and ("monitor", "update") in changes
    assert {c.verb for c in push(datadog_configuration(datadog.url))} == {"unchanged"}


def test_dry_run_prints_every_definition_and_sends_nothing(datadog: RecordingDatadog) -> None:
    result = CliRunner().invoke(app, ["datadog", "push", "--dry-run", "--host", datadog.url])
    assert result.exit_code == 0, result.output
    for body in dashboards():
        assert f"# dashboard: {body['title']}" in result.output
    assert result.output.count("# monitor: ") == len(monitors())
    assert datadog.requests == []
