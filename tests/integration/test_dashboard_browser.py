"""The dashboard in headless Chromium against a real worker fed with traffic and a burst.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). The screenshot
is kept as a test artifact in the test's tmp dir and in ``.artifacts/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.conftest import eventually
from tests.integration.test_pipeline import BURST, history, produce

pytestmark = pytest.mark.integration

TOKEN = "dashboard-test-token"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
WAIT_S = 60


@pytest.fixture
def browser() -> WebDriver:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "install Debian's chromium and chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def _wait(browser: WebDriver, check, message: str):
    """Poll ``check`` until truthy; the page re-renders every few seconds, so an element found in one
    poll can be replaced before it is read or clicked: that poll just counts as not yet."""
    return WebDriverWait(browser, WAIT_S, poll_frequency=0.3,
                         ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: check(), message=message)


def _click(browser: WebDriver, selector: str) -> bool:
    browser.find_element(By.CSS_SELECTOR, selector).click()
    return True


def browse(browser: WebDriver, url: str, alert_id: str, screenshot: Path) -> None:
    """Save the token, see charts with data and the burst's alert, acknowledge it, see the ack logged."""
    browser.get(f"{url}/ui/")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    assert browser.execute_script("return localStorage.getItem('spendsentry.token')") == TOKEN
    assert TOKEN not in browser.current_url
    _wait(browser, lambda: [s for s in browser.find_elements(By.CSS_SELECTOR, "svg.spark")
                            if int(s.get_attribute("data-points")) > 100 and int(s.get_attribute("data-band")) > 100],
          "charts with points and an expected band")
    _wait(browser, lambda: len(browser.find_element(By.CSS_SELECTOR, "svg.spark polyline.actual")
                               .get_attribute("points").split()) > 100, "an actual line with its points")
    card = f'[data-alert-id="{alert_id}"]'
    _wait(browser, lambda: [c for c in browser.find_elements(By.CSS_SELECTOR, card)
                            if "gpt-4o" in c.text and "delivered" in c.text], "the burst's alert, delivered")
    _wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#budget-table [data-budget]"), "the budget row")
    _wait(browser, lambda: _click(browser, f'{card} button[data-action="ack"]'), "the Acknowledge button")
    _wait(browser, lambda: "feedback: ack by dashboard" in browser.find_element(
        By.CSS_SELECTOR, f"{card} .log").text, "the acknowledgement in the delivery log")
    browser.save_screenshot(str(screenshot))
    # the team lens: search's view shows its own model and not cx's burst
    browser.get(f"{url}/ui/?team=search")
    _wait(browser, lambda: [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".chart h3")]
          and all("gpt-4o-mini" in h.text for h in browser.find_elements(By.CSS_SELECTOR, ".chart h3"))
          and "no alerts in this view" in browser.find_element(By.ID, "alert-list").text,
          "the search team's view")


async def test_dashboard_shows_the_burst_and_acknowledges_it(make_worker, receiver, broker, topic_prefix, browser,
                                                             tmp_path):
    worker = make_worker(SPENDSENTRY_WEBHOOK_URLS=receiver.url, SPENDSENTRY_WEBHOOK_SECRET=receiver.secret,
                         SPENDSENTRY_API_TOKENS=TOKEN).start()
    await worker.ready()
    async with httpx.AsyncClient(base_url=worker.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        budget = await client.post("/v1/budgets", json={"name": "cx monthly", "match": {"team": "cx"},
                                                         "amount_usd": 500})
        assert budget.status_code == 201, budget.text
    await produce(broker, topic_prefix, history(0, 200), batch=50)
    (firing,) = await eventually(lambda: [r for r in receiver.received
                                          if r["body"]["type"] == "spendsentry.alert.firing"
                                          and r["body"]["data"]["type"] == "cost_spike"], message="the burst's alert")
    alert_id = firing["body"]["data"]["alert_id"]
    assert firing["body"]["data"]["window_start"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(BURST.start)))
    screenshot = tmp_path / "dashboard.png"
    await asyncio.to_thread(browse, browser, worker.url, alert_id, screenshot)
    record = await worker.get(f"/v1/alerts/{alert_id}")
    assert [(f["action"], f["user"]) for f in record["feedback"]] == [("ack", "dashboard")]
    assert screenshot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "dashboard.png")
