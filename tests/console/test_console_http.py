"""The console over HTTP against a real demo run: sign-in and sessions, CSRF, the CSP, roles, and actions
that reach the API and the audit log with the signed-in person's name."""

from __future__ import annotations

import json

import requests

from spanwarden.enforcers.audit_query import entries
from tests.console.conftest import DemoConsole, page_csrf, sign_in


def test_without_a_session_pages_redirect_to_sign_in(demo_console: DemoConsole) -> None:
    for path in ("", "agents/x", "approvals", "audit", "audit/export"):
        answer = requests.get(demo_console.url + path, allow_redirects=False, timeout=10)
        assert answer.status_code == 303, path
        assert answer.headers["Location"].startswith("/sign-in?next=/"), path
    polled = requests.get(demo_console.url + "fleet/rows", headers={"HX-Request": "true"}, allow_redirects=False,
                          timeout=10)
    assert polled.status_code == 401 and polled.headers["HX-Redirect"].startswith("/sign-in")


def test_sign_in_sets_a_strict_session_cookie_and_keeps_the_token_out_of_urls(demo_console: DemoConsole) -> None:
    session = requests.Session()
    form = session.get(demo_console.url + "sign-in", timeout=10)
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    assert "script-src 'self'" in form.headers["Content-Security-Policy"]
    answer = session.post(demo_console.url + "sign-in", allow_redirects=False, timeout=10, data={
        "csrf": page_csrf(form.text), "token": demo_console.oncall_token, "next": "/audit"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/audit"
    cookie = answer.headers["Set-Cookie"]
    assert "spanwarden_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert demo_console.oncall_token not in cookie and demo_console.oncall_token not in answer.headers["Location"]
    fleet = session.get(demo_console.url, timeout=10)
    assert fleet.status_code == 200 and "demo-oncall (oncall)" in fleet.text
    assert demo_console.oncall_token not in fleet.text


def test_sign_in_refuses_unknown_tokens_forms_without_csrf_and_open_redirects(demo_console: DemoConsole) -> None:
    session = requests.Session()
    csrf = page_csrf(session.get(demo_console.url + "sign-in", timeout=10).text)
    wrong = session.post(demo_console.url + "sign-in", data={"csrf": csrf, "token": "not-a-token"}, timeout=10,
                         allow_redirects=False)
    assert wrong.status_code == 401 and "spanwarden_session" not in wrong.headers.get("Set-Cookie", "")
    forged = requests.post(demo_console.url + "sign-in", allow_redirects=False, timeout=10,
                           data={"csrf": "guess", "token": demo_console.oncall_token})
    assert forged.status_code == 403
    csrf = page_csrf(session.get(demo_console.url + "sign-in", timeout=10).text)
    away = session.post(demo_console.url + "sign-in", allow_redirects=False, timeout=10,
                        data={"csrf": csrf, "token": demo_console.oncall_token, "next": "//evil.example/"})
    assert away.status_code == 303 and away.headers["Location"] == "/"


def test_a_post_with_a_wrong_csrf_token_is_refused_and_changes_nothing(demo_console: DemoConsole) -> None:
    session = sign_in(demo_console.url, demo_console.oncall_token)
    agent = demo_console.exfiltrating
    before = session.get(f"{demo_console.url}agents/{agent}", timeout=10)
    assert before.status_code == 200
    answer = session.post(f"{demo_console.url}agents/{agent}/command", allow_redirects=False, timeout=10,
                          data={"csrf": "wrong", "command": "resume", "reason": "csrf test"})
    assert answer.status_code == 403
    audit = demo_console.state_dir / "audit.jsonl"
    assert not [e for e in entries(audit, agent=agent) if e.reason == "csrf test"]


def test_a_viewer_sees_the_fleet_but_cannot_kill(demo_console: DemoConsole) -> None:
    session = sign_in(demo_console.url, demo_console.viewer_token)
    fleet = session.get(demo_console.url, timeout=10)
    assert fleet.status_code == 200 and "watcher (viewer)" in fleet.text
    agent = demo_console.outcome.summary["incidents"][0]["agent"]
    page = session.get(f"{demo_console.url}agents/{agent}", timeout=10)
    assert 'id="command-form"' not in page.text  # no buttons for a viewer
    answer = session.post(f"{demo_console.url}agents/{agent}/command", allow_redirects=False, timeout=10,
                          data={"csrf": page_csrf(page.text), "command": "kill", "reason": "viewer tries"})
    assert answer.status_code == 403
    status = requests.get(demo_console.url + "v1/status", timeout=10,
                          headers={"Authorization": f"Bearer {demo_console.viewer_token}"}).json()
    decision = next(a for a in status["agents"] if a["agent"] == agent)["decision"]
    assert "viewer tries" not in decision["reason"]


def test_oncall_throttles_a_tool_and_resumes_it_audited_with_their_name(demo_console: DemoConsole) -> None:
    session = sign_in(demo_console.url, demo_console.oncall_token)
    agent = next(a for a in demo_console.outcome.summary["incidents"] if a["kind"] == "error_storm")["agent"]
    page = session.get(f"{demo_console.url}agents/{agent}", timeout=10)
    done = session.post(f"{demo_console.url}agents/{agent}/command", timeout=10, data={
        "csrf": page_csrf(page.text), "command": "throttle", "rate_per_s": "0.5", "tool": "send_*",
        "reason": "console throttle test"})
    assert done.status_code == 200 and "is now throttle" in done.text and "tool:send_*" in done.text
    status = requests.get(demo_console.url + "v1/status", timeout=10,
                          headers={"Authorization": f"Bearer {demo_console.oncall_token}"}).json()
    scoped = next(a for a in status["agents"] if a["agent"] == agent)["scoped"]
    assert any(d["scope"] == "tool:send_*" and d["action"] == "throttle" for d in scoped)
    fleet = session.get(demo_console.url, timeout=10)
    assert "throttle [tool:send_*]" in fleet.text  # the scoped decision shows beside the agent-wide one
    session.post(f"{demo_console.url}agents/{agent}/command", timeout=10, data={
        "csrf": page_csrf(page.text), "command": "resume", "tool": "send_*", "reason": "console resume test"})
    audit = demo_console.state_dir / "audit.jsonl"
    mine = [e for e in entries(audit, agent=agent) if e.reason.startswith("console ")]
    assert {e.reason for e in mine} >= {"console throttle test", "console resume test"}
    assert mine and {e.actor for e in mine} == {"human:demo-oncall"}, [(e.kind, e.actor) for e in mine]


def test_audit_page_verifies_the_chain_and_exports(demo_console: DemoConsole) -> None:
    session = sign_in(demo_console.url, demo_console.viewer_token)
    page = session.get(demo_console.url + "audit", params={"agent": demo_console.exfiltrating}, timeout=10)
    assert page.status_code == 200 and "Chain intact" in page.text and 'id="explained"' in page.text
    exported = session.get(demo_console.url + "audit/export", params={"agent": demo_console.exfiltrating},
                           timeout=10)
    assert exported.headers["Content-Disposition"].startswith("attachment")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert lines and {e["agent"]["id"] for e in lines} == {demo_console.exfiltrating}
    bad = session.get(demo_console.url + "audit", params={"agent": "x", "at": "yesterday"}, timeout=10)
    assert bad.status_code == 400 and "ISO 8601" in bad.text


def test_htmx_is_served_from_the_package(demo_console: DemoConsole) -> None:
    answer = requests.get(demo_console.url + "console/static/htmx.min.js", timeout=10)
    assert answer.status_code == 200 and "htmx" in answer.text[:2000]
    assert requests.get(demo_console.url + "console/static/../sessions.py", timeout=10).status_code == 404


def test_an_approval_notifications_link_opens_its_console_page_after_sign_in(demo_console: DemoConsole) -> None:
    from spanwarden.notify.notice import ACCESS, from_entry

    audit = demo_console.state_dir / "audit.jsonl"
    opened = [n for e in entries(audit, agent=demo_console.exfiltrating)
              if (n := from_entry(e)) is not None and n.kind == ACCESS and not n.resolved]
    assert opened, "the demo's exfiltrating agent opened no access request"
    link = demo_console.url.rstrip("/") + opened[-1].path
    session = requests.Session()
    first = session.get(link, allow_redirects=False, timeout=10)
    assert first.status_code == 303 and first.headers["Location"] == f"/sign-in?next={opened[-1].path}"
    form = session.get(demo_console.url.rstrip("/") + first.headers["Location"], timeout=10)
    landed = session.post(demo_console.url + "sign-in", timeout=10, data={
        "csrf": page_csrf(form.text), "token": demo_console.viewer_token, "next": opened[-1].path})
    assert landed.url == link and landed.status_code == 200
    request_id = opened[-1].details["request_id"]
    assert f'id="request-{request_id}"' in landed.text or f"{request_id} is no longer waiting" in landed.text


def test_the_console_session_opens_the_console_pages_never_the_api(demo_console: DemoConsole) -> None:
    session = sign_in(demo_console.url, demo_console.oncall_token)
    assert session.get(demo_console.url + "v1/status", timeout=10).status_code == 401
    agent = demo_console.outcome.summary["incidents"][0]["agent"]
    csrf = page_csrf(session.get(demo_console.url + "approvals", timeout=10).text)
    forged = session.post(demo_console.url + "v1/commands", json={"command": "kill", "agent": agent,
                                                                   "reason": "cookie on the api"},
                          headers={"X-Spanwarden-CSRF": csrf}, timeout=10)
    assert forged.status_code == 401
    audit = demo_console.state_dir / "audit.jsonl"
    assert not [e for e in entries(audit, agent=agent) if "cookie on the api" in e.reason]
