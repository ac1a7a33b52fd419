"""A short demo run (the real service, the simulated fleet over OTLP) kept serving while the console tests
drive it: its access requests wait unanswered (the demo's on-call bot is off), for a person to answer."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from spanwarden.demo.fleet import build_fleet
from spanwarden.demo.runner import DemoConfig, DemoOutcome, run_demo
from spanwarden.embedded.service import EmbeddedService
from spanwarden.enforcers.roles import Role, add_token
from tests.streaming.conftest import broker  # noqa: F401  (the Kafka console test's broker)

SEED, AGENTS, HOURS = 7, 6, 1.5


@dataclass
class DemoConsole:
    url: str  # the console, e.g. http://127.0.0.1:PORT/
    oncall_token: str  # signs in as demo-oncall
    viewer_token: str  # signs in as watcher (viewer)
    state_dir: Path
    service: EmbeddedService
    outcome: DemoOutcome
    exfiltrating: str  # the agent the demo gives the unusual-access incident


@pytest.fixture(scope="package")
def demo_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoConsole]:
    state_dir = tmp_path_factory.mktemp("console-demo")
    viewer = add_token(state_dir / "tokens.yaml", "watcher", Role.VIEWER)
    started: dict[str, str] = {}
    running: dict[str, object] = {}
    ready, done = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def hold(service: EmbeddedService, outcome: DemoOutcome) -> None:
        running.update(service=service, outcome=outcome)
        ready.set()
        done.wait(600)

    def run() -> None:
        try:
            run_demo(DemoConfig(seed=SEED, agents=AGENTS, duration_s=HOURS * 3600, state_dir=state_dir,
                                oncall_answers=False),
                     on_start=lambda url, token: started.update(url=url, token=token), before_stop=hold)
        except BaseException as exc:  # surfaced by the fixture below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="console-demo", daemon=True)
    thread.start()
    assert ready.wait(300), "the demo run did not finish within 300 s"
    if failed:
        raise failed[0]
    fleet = build_fleet(SEED, AGENTS, HOURS * 3600)
    exfiltrating = next(i.agent_id for i in fleet.incidents if i.kind == "unusual_access")
    try:
        service, outcome = running["service"], running["outcome"]
        assert isinstance(service, EmbeddedService) and isinstance(outcome, DemoOutcome)
        yield DemoConsole(started["url"], started["token"], viewer, state_dir, service, outcome, exfiltrating)
    finally:
        done.set()
        thread.join(60)


def sign_in(base: str, token: str) -> requests.Session:
    """A requests session signed in to the console as a browser would: the form's CSRF token, then the post."""
    session = requests.Session()
    form = session.get(f"{base}sign-in", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text[:300]
    answer = session.post(f"{base}sign-in", data={"csrf": csrf.group(1), "token": token, "next": "/"},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text[:300]
    return session


def page_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:300]
    return found.group(1)
