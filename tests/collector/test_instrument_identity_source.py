"""Where an agent's id came from, as `/v1/status` (`agent_identity_from`) and `audit explain` say it: from
`instrument(agent_id=...)` when the agent's code named itself there — not "service", which is kept for a
service.name the agent's environment set (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

import spanwarden
from spanwarden.collector import agent_identity
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings


@pytest.fixture
def service(tmp_path) -> Iterator[str]:
    svc = EmbeddedService(Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never"))
    yield f"http://127.0.0.1:{svc.start_in_thread()}"
    svc.stop()


def _one_call(url: str, **named: str) -> None:
    handle = spanwarden.instrument(endpoint=url, set_global=False, instrumentations="none", ready_timeout_s=0.5,
                                   **named)
    try:
        with handle.provider.get_tracer("agent").start_as_current_span(
                "chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}):
            pass
        handle.provider.force_flush()
    finally:
        handle.shutdown()


def test_the_id_instrument_was_given_is_said_to_come_from_there(service: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _one_call(service, agent_id="one-liner")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "named-by-env")
    _one_call(service)
    status = requests.get(f"{service}/v1/status", headers={"Authorization": "Bearer t"}, timeout=5).json()
    sources = {a["agent"]: a["agent_identity_from"] for a in status["agents"]}
    assert sources == {"one-liner": "instrument", "named-by-env": "service"}
    assert "instrument(agent_id=)" in agent_identity.describe("instrument")
