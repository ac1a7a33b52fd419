"""The real datadog-api-client pointed at a recording stand-in for Datadog on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spanwarden.dashboards.recording_server import RecordingDatadog


@pytest.fixture
def datadog(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingDatadog]:
    server = RecordingDatadog().start()
    monkeypatch.setenv("DD_API_KEY", server.api_key)
    monkeypatch.setenv("DD_APP_KEY", server.app_key)
    yield server
    server.stop()
