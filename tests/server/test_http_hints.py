"""What every spanwarden app answers alike: its identifying header, and a rate-limited warning with the
likely mistake for paths it does not serve; and the log lines for new agents and decisions."""

from __future__ import annotations

import logging

import requests

from spanwarden.enforcers.audit_log import AgentRef
from spanwarden.server import announce, http_hints


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_unknown_paths_are_warned_once_a_minute_with_the_likely_mistake(caplog):
    clock = Clock()
    warnings = http_hints.UnknownPathWarnings(clock)
    with caplog.at_level(logging.WARNING, logger="spanwarden.http"):
        for _ in range(50):
            warnings.note("POST", "/v1/traces/v1/traces", "127.0.0.1")
        warnings.note("POST", "/v1/metrics", "127.0.0.1")
        clock.t = 61
        warnings.note("POST", "/v1/traces/v1/traces", "127.0.0.1")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and warnings.count == 52
    assert "OTEL_EXPORTER_OTLP_ENDPOINT to the base URL" in lines[0]
    assert "OTEL_METRICS_EXPORTER=none" in lines[1]


def test_the_services_routes_answer_with_the_header_and_404s_are_noted(tmp_path, caplog):
    from spanwarden.embedded.service import EmbeddedService
    from spanwarden.settings import Settings

    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never"))
    url = f"http://127.0.0.1:{service.start_in_thread()}"
    try:
        with caplog.at_level(logging.WARNING, logger="spanwarden.http"):
            assert requests.get(f"{url}/healthz", timeout=5).headers[http_hints.HEADER]
            missing = requests.post(f"{url}/v1/traces/v1/traces", data=b"x", timeout=5)
        assert missing.status_code == 404 and http_hints.HEADER in missing.headers
        assert any("/v1/traces/v1/traces" in r.getMessage() for r in caplog.records)
    finally:
        service.stop()


def test_new_agents_are_named_then_counted(caplog):
    clock = Clock()
    announcer = announce.Announcer(clock)
    with caplog.at_level(logging.INFO, logger="spanwarden"):
        announcer.agents([AgentRef("billing-bot", "alice@example.com", "finance", "prod")])
        announcer.agents([AgentRef("billing-bot")])  # not new
        announcer.agents(AgentRef(f"churn-{i}") for i in range(100))
        clock.t = 61
        announcer.agents([AgentRef("late")])
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "new agent billing-bot (owner alice@example.com, team finance, environment prod)"
    named = [line for line in lines if line.startswith("new agent")]
    assert len(named) == announce.PER_MINUTE + 1  # the minute's quota, then "late" in the next minute
    assert any(line.startswith(f"{101 - announce.PER_MINUTE} more new agents") for line in lines)
