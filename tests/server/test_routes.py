"""One route table for both runtimes: every route has an access level, nothing is registered outside the
table, and each route's auth answers the same in `serve` and `serve --kafka` (tested once, against each)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from spanwarden.collector.otlp_encode import to_request
from spanwarden.collector.span_record import make_record
from spanwarden.enforcers.audit_log import read_entries
from spanwarden.enforcers.roles import REQUIRED
from spanwarden.server import app as server_app
from spanwarden.server import routes
from spanwarden.server.routes import Access, Route
from tests.server.conftest import RUNTIMES, Running, start

PEOPLE = {Access.VIEWER: "viewer", Access.ONCALL: "oncall", Access.ADMIN: "admin"}
BELOW = {Access.VIEWER: None, Access.ONCALL: "viewer", Access.ADMIN: "oncall"}
# What a people's route needs in its body to get past parsing (for the "allowed" case).
BODIES = {"/v1/commands": {"command": "kill", "agent": "billing-bot", "reason": "r"},
          "/v1/approvals/{id}/answer": {"approve": True}, "/v1/access-requests/{id}/answer": {"approve": False},
          "/v1/audit/acknowledge": {"reason": "r"}, "/v1/profile/{agent}/pin": {"reason": "r"}}


def _path(route: Route) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "billing-bot" if m.group(1) == "agent" else "req-00000000", route.path)


def _call(up: Running, route: Route, token: str | None) -> int:
    send = up.get if route.method == "GET" else up.post
    kwargs = {} if route.method == "GET" else {"json": BODIES.get(route.path, {})}
    return send(_path(route), token, **kwargs).status_code


async def _empty(request: web.Request) -> web.Response:
    return web.Response()


@pytest.mark.parametrize("kind", RUNTIMES)
def test_every_route_is_in_the_table_and_nothing_else_is_served(kind: str, tmp_path: Path) -> None:
    up, stop = start(kind, tmp_path)
    try:
        app = up.runtime.build_app()
    finally:
        stop()
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"
              and r.resource is not None}
    assert served >= {(r.method, r.path) for r in routes.TABLE}  # the API, and the console's pages if served
    assert served == set(app[routes.KEY]) and routes.unlisted(app) == []
    assert all(isinstance(route.access, Access) for route in app[routes.KEY].values())


def test_a_route_outside_the_table_cannot_be_served(tmp_path: Path) -> None:
    up, stop = start("embedded", tmp_path)
    try:
        app = server_app.build(up.runtime)
        app.router.add_get("/sneaky", _empty)
        assert routes.unlisted(app) == ["GET /sneaky"]
        with pytest.raises(ValueError, match="twice"):
            server_app.build(up.runtime, extra=[(routes.TABLE[0], _empty)])
    finally:
        stop()


def test_every_route_has_an_access_level_that_agrees_with_the_roles() -> None:
    for route in routes.TABLE:
        assert isinstance(route.access, Access), route
        if route.access in PEOPLE:
            assert route.action, f"{route.method} {route.path}: a people's route names what it is audited as"
            if route.action in REQUIRED:
                assert REQUIRED[route.action] == route.access.role, route
        if route.method == "POST":
            assert route.mutates, f"{route.method} {route.path} changes state: the durability rules hold it"
    assert [r.path for r in routes.TABLE if r.access is Access.PUBLIC and r.method == "POST"] == []


PEOPLES_ROUTES = [r for r in routes.TABLE if r.access in PEOPLE]


@pytest.mark.parametrize("route", PEOPLES_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_peoples_routes_need_their_role(running: Running, route: Route) -> None:
    tokens = running.tokens
    assert _call(running, route, None) == 401
    assert _call(running, route, "not-a-token") == 401
    assert _call(running, route, tokens["billing-bot"]) == 403  # an agent's token is never a person's
    below = BELOW[route.access]
    if below is not None:
        assert _call(running, route, tokens[below]) == 403
    assert _call(running, route, tokens[PEOPLE[route.access]]) not in (401, 403)


@pytest.mark.parametrize("path", ["/v1/leases", "/v1/approvals"])
def test_agent_routes_are_bound_to_the_agents_token(running: Running, path: str) -> None:
    body = {"agent": "billing-bot", "tool": "refund_payment", "environment": "prod"}
    assert running.post(path, json=body).status_code == 401
    assert running.post(path, "not-a-token", json=body).status_code == 401
    assert running.post(path, running.tokens["search-bot"], json=body).status_code == 403  # another agent's
    assert running.post(path, running.tokens["oncall"], json=body).status_code == 403  # a lease is the agent's
    own = running.post(path, running.tokens["billing-bot"], json=body)
    assert own.status_code not in (401, 403), own.text


def test_public_routes_need_no_token(running: Running) -> None:
    for route in (r for r in routes.TABLE if r.access is Access.PUBLIC):
        assert _call(running, route, None) not in (401, 403), route


def test_forged_spans_are_refused_and_audited_once_in_both_runtimes(running: Running) -> None:
    forged = to_request([make_record(agent_id="payments-bot")]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf",
               "Authorization": f"Bearer {running.tokens['billing-bot']}"}
    for _ in range(3):
        refused = running.post("/v1/traces", data=forged, headers=headers)
        assert refused.status_code == 403 and "payments-bot" in refused.json()["message"]
    assert running.post("/v1/traces", data=forged, headers={"Content-Type": "application/x-protobuf"}
                        ).status_code == 401
    metrics = running.get("/metrics").text
    assert 'route="/v1/traces",status="403"} 3.0' in metrics
    audited = [e for _, e in read_entries(running.state_dir / "audit.jsonl") if e.data.get("command") == "ingest"]
    assert [(e.actor, e.agent.id, e.data["status"]) for e in audited] == [
        ("agent:billing-bot", "payments-bot", 403)]


def test_refusals_of_people_are_audited_as_attempts_with_what_they_tried(running: Running) -> None:
    kill = {"command": "kill", "agent": "billing-bot", "reason": "r"}
    assert running.post("/v1/commands", running.tokens["viewer"], json=kill).status_code == 403
    assert running.post("/v1/commands", "forged", json=kill).status_code == 401
    refused = [e for _, e in read_entries(running.state_dir / "audit.jsonl") if e.data.get("outcome") == "refused"]
    assert [(e.actor, e.agent.id, e.data["command"]) for e in refused] == [("human:vera", "billing-bot", "kill")]
    assert refused[0].reason == "refused kill: role viewer may not kill"


def test_what_kafka_cannot_do_yet_is_501_behind_the_same_auth(running: Running) -> None:
    admin, viewer = running.tokens["admin"], running.tokens["viewer"]
    answers = {"reload": running.post("/v1/policy/reload", admin),
               "profile": running.get("/v1/profile/billing-bot", viewer),
               "agent_metrics": running.get("/metrics/agents", viewer)}
    if running.kind == "kafka":  # a reload is published on the policy topic: 503 until the broker is there
        assert {k: r.status_code for k, r in answers.items()} == {"reload": 503, "profile": 404,
                                                                  "agent_metrics": 200}
        pin = running.post("/v1/profile/billing-bot/pin", admin, json={"reason": "r"})  # pinned on its worker
        assert pin.status_code == 400 and "no learned profile" in pin.json()["message"]  # as `serve` answers
    else:
        assert answers["reload"].status_code == 200 and answers["agent_metrics"].status_code == 200
        assert answers["profile"].status_code == 404  # no such agent yet


def test_both_runtimes_serve_their_own_metrics(running: Running) -> None:
    running.get("/v1/status")
    scraped = running.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("application/openmetrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert samples[("spanwarden_audit_chain_ok", ())] == 1
    assert samples[("spanwarden_http_requests_total", (("method", "GET"), ("route", "/v1/status"),
                                                       ("status", "401")))] == 1
    assert samples[("spanwarden_process_resident_memory_bytes", ())] > 0
    health = running.get("/healthz").json()
    assert health["status"] == "ok" and health["runtime"] == running.kind


def test_the_readme_gives_each_route_its_role_from_the_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = dict(re.findall(r"^\| `(\w+ \S+)` \| (\w+)", readme, re.M))
    wrong = {f"{r.method} {r.path}": (listed.get(f"{r.method} {r.path}"), r.access.value) for r in routes.TABLE
             if listed.get(f"{r.method} {r.path}") != r.access.value}
    assert not wrong, f"README role column vs the route table: {wrong}"


def test_a_console_session_signs_into_pages_never_into_the_api(running: Running) -> None:
    """The browser sends the session cookie by itself, so a cookie alone must not command (CSRF): the API
    takes bearer tokens only; the console's pages take the session."""
    import requests

    browser = requests.Session()
    form = browser.get(f"{running.url}/sign-in", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text[:500]
    signed = browser.post(f"{running.url}/sign-in", timeout=10, allow_redirects=False,
                          data={"csrf": csrf.group(1), "token": running.tokens["oncall"], "next": "/"})
    assert signed.status_code == 303 and "spanwarden_session" in browser.cookies
    assert browser.get(f"{running.url}/", timeout=10).status_code == 200  # a page: signed in
    assert browser.get(f"{running.url}/v1/status", timeout=10).status_code == 401  # the API: not by a cookie
    kill = browser.post(f"{running.url}/v1/commands", timeout=10,
                        json={"command": "kill", "agent": "billing-bot", "reason": "csrf"})
    assert kill.status_code == 401
