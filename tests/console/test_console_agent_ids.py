"""Agent ids with `/` and `\\` (the README's sub-agent naming, `support/Triage`) over real HTTP on the
embedded runtime: the fleet links quote the id as one path segment, the Agent page answers both that
link and a typed `/agents/support/Triage`, commands reach the right agent, and the fleet filters by name."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import make_record
from tests.console.conftest import page_csrf, sign_in
from tests.server.conftest import start

ODD = ("support/Triage", "a/b\\c", "plain-bot")


def test_agents_with_slashes_have_working_links_and_the_fleet_filters_by_name(tmp_path: Path) -> None:
    up, stop = start("embedded", tmp_path / "svc", ingest_auth="off")
    try:
        body = to_request([make_record(agent_id=a) for a in ODD]).SerializeToString()
        assert up.post("/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}).ok
        deadline = time.monotonic() + 10
        while {a["agent"] for a in up.get("/v1/status", up.tokens["viewer"]).json()["agents"]} < set(ODD):
            assert time.monotonic() < deadline, "the agents did not appear in status"
            time.sleep(0.2)
        base = f"{up.url}/"
        session = sign_in(base, up.tokens["oncall"])
        fleet = session.get(base, timeout=10).text
        for agent in ODD:
            link = f'href="/agents/{quote(agent, safe="")}"'
            assert link in fleet, (agent, link)
            page = session.get(f"{up.url}/agents/{quote(agent, safe='')}", timeout=10)
            assert page.status_code == 200 and 'id="command-form"' in page.text, agent
        typed = session.get(f"{up.url}/agents/support/Triage", timeout=10)
        assert typed.status_code == 200 and "support/Triage" in typed.text
        done = session.post(f"{up.url}/agents/support/Triage/command", timeout=10,
                            data={"csrf": page_csrf(typed.text), "command": "kill", "reason": "slash test"})
        assert done.status_code == 200, done.text[:300]
        status = {a["agent"]: a for a in up.get("/v1/status", up.tokens["viewer"]).json()["agents"]}
        assert status["support/Triage"]["decision"]["action"] == "halt"
        assert status["a/b\\c"]["decision"]["action"] == "allow"
        narrowed = session.get(base, params={"name": "TRIAGE"}, timeout=10).text
        assert "support/Triage" in narrowed and "plain-bot" not in narrowed
        assert 'name="name" value="TRIAGE"' in narrowed
    finally:
        stop()
