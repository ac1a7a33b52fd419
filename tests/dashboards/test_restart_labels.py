"""After a restart, before the agent reports again: `/metrics/agents` labels it by its name (not "other")
and `/v1/status` still says where its id came from — spans from the real OTel SDK and OTLP exporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings
from tests.dashboards.test_prometheus import scrape, send


def _status(url: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/v1/status", headers={"Authorization": "Bearer t"}, timeout=10).json()
    return {a["agent"]: a for a in answer["agents"]}


def test_labels_and_identity_source_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(port=0, state_dir=tmp_path, admin_token="t", audit_fsync="never", trust_span_time=True)
    first = EmbeddedService(settings)
    url = f"http://127.0.0.1:{first.start_in_thread()}"
    try:
        send(url, "billing-bot", 2)
        source = _status(url)["billing-bot"]["agent_identity_from"]
    finally:
        first.stop()
    assert source  # the resource's service.name, or wherever the decoder found it
    second = EmbeddedService(settings)
    url = f"http://127.0.0.1:{second.start_in_thread()}"
    try:
        assert _status(url)["billing-bot"]["agent_identity_from"] == source
        decision = scrape(url)["spanwarden_agent_decision"]
        assert {s.labels["agent"] for s in decision} == {"billing-bot"}, decision
    finally:
        second.stop()
