"""The console in a real browser: Debian's headless Chromium driven by Selenium through chromedriver, on
127.0.0.1 only. Sign in, see the demo fleet, open the exfiltrating agent, deny its pending access request,
and find the answer in the audit log with the signed-in name. Each page is kept as a screenshot under
$SPANWARDEN_ARTIFACTS (default tests/artifacts/console/). Without the browser the test is skipped, unless
SPANWARDEN_REQUIRE_BROWSER=1 (CI sets it), when it fails."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanwarden.enforcers.audit_query import entries
from tests.console.conftest import DemoConsole

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1100")
ARTIFACTS = Path(os.environ.get("SPANWARDEN_ARTIFACTS") or Path(__file__).parents[1] / "artifacts") / "console"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    webdriver = None
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("SPANWARDEN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)")
        pytest.skip(f"no {', '.join(missing)}")
    assert webdriver is not None
    profile = tempfile.mkdtemp(prefix="spanwarden-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: Any, name: str) -> Path:
    """The whole page (the window grown to its height for the shot), as `name`.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height) + 140, 700), 8000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1100)
    return path


def csp_violations(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
            or "Refused to" in e["message"]]


def test_sign_in_see_the_fleet_and_deny_the_exfiltrating_agents_request(demo_console: DemoConsole,
                                                                         browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15)
    browser.get(demo_console.url)
    wait.until(ready.presence_of_element_located((By.ID, "sign-in")))
    assert "/sign-in" in browser.current_url
    shot(browser, "1-sign-in")
    browser.find_element(By.ID, "token").send_keys(demo_console.oncall_token)
    browser.find_element(By.ID, "sign-in-button").click()

    wait.until(ready.presence_of_element_located((By.ID, "fleet-rows")))
    assert demo_console.oncall_token not in browser.current_url
    assert browser.find_element(By.ID, "signed-in-as").text == "demo-oncall (oncall)"
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.agent-row")
    assert {r.get_attribute("data-agent") for r in rows} >= {i["agent"] for i in demo_console.outcome.summary
                                                              ["incidents"]}
    assert browser.find_elements(By.CSS_SELECTOR, "svg.spark")  # spend sparklines drawn
    assert browser.execute_script("return typeof htmx") == "object"  # loaded under the CSP
    browser.execute_script("document.getElementById('fleet-rows').dataset.seen = '1'")
    wait.until(lambda d: d.find_element(By.ID, "fleet-rows").get_attribute("data-seen") is None)  # polled
    shot(browser, "2-fleet")

    agent = demo_console.exfiltrating
    browser.find_element(By.CSS_SELECTOR, f'tr[data-agent="{agent}"] a.agent-link').click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "agent-name"), agent))
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline")  # spend over time by model
    kinds = {r.get_attribute("class") for r in browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")}
    assert {"finding", "decision", "approval"} <= kinds  # findings and decisions on one timeline
    shot(browser, "3-agent")

    browser.find_element(By.CSS_SELECTOR, "#agent-waiting a.request-link").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "tr.pending-row.focus")))
    request = browser.find_element(By.CSS_SELECTOR, "tr.pending-row.focus")
    request_id = request.get_attribute("id").removeprefix("request-")
    assert agent in request.text
    shot(browser, "4-approvals")
    request.find_element(By.CSS_SELECTOR, "input.reason").send_keys("no business in that table")
    request.find_element(By.CSS_SELECTOR, "button.deny").click()
    wait.until(ready.presence_of_element_located((By.ID, "flash")))
    assert f"{request_id} denied by demo-oncall" in browser.find_element(By.ID, "flash").text
    assert not browser.find_elements(By.ID, f"request-{request_id}")
    shot(browser, "5-answered")

    browser.find_element(By.ID, "nav-audit").click()
    browser.find_element(By.ID, "explain-agent").send_keys(agent)
    browser.find_element(By.CSS_SELECTOR, "#explain-form button").click()
    wait.until(ready.presence_of_element_located((By.ID, "explained")))
    assert "Chain intact" in browser.find_element(By.ID, "chain").text
    table = browser.find_element(By.ID, "audit-entries").text
    assert "human:demo-oncall" in table and "denied" in table
    shot(browser, "6-audit")
    assert not csp_violations(browser)

    denied = [e for e in entries(demo_console.state_dir / "audit.jsonl", agent=agent) if e.kind == "approval"
              and e.data.get("request_id") == request_id and e.data.get("status") == "denied"]
    assert [e.actor for e in denied] == ["human:demo-oncall"]
