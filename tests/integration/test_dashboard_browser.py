"""The web dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven
by selenium): a daemon with a TCP listener, the browser logged in with HTTP Basic (a key of
`localbatch credentials`, sent as a header through the DevTools protocol). The page loads, the
name filter narrows the job list, the log tail of a running job grows without a reload, and an
array's grid has a cell per child.

Chromium is installed by `make test` as root on Debian (as docker.io is); a missing browser
skips here, and fails with LOCALBATCH_REQUIRE_DOCKER=1 (CI)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import unavailable
from tests.integration.daemons import CONFIG, Daemon, started_daemon
from tests.integration.s3 import free_port

WAIT_S = 60  # bound on every wait; each takes a second or two when things work
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TICKER = "i=0; while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done"


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        unavailable("no chromium and chromedriver (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[tuple[Daemon, str, str]]:
    port = free_port()
    config = CONFIG + f'\n[api]\nlisten = "127.0.0.1:{port}"\n'
    with started_daemon(tmp_path, docker_client, config) as daemon:
        login = json.loads(daemon.ok("dashboard", "--json"))
        assert login["url"] == f"http://127.0.0.1:{port}/dashboard"
        token = base64.b64encode(f"{login['user']}:{login['password']}".encode()).decode()
        yield daemon, login["url"], f"Basic {token}"


def until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"never: {what}")


def test_the_dashboard_in_chromium(browser: Any, dashboard: tuple[Daemon, str, str]) -> None:
    from selenium.webdriver.common.by import By

    daemon, url, authorization = dashboard
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": authorization}})
    ticker = daemon.submit_api(jobName="alpha-ticker", containerOverrides={"command": ["sh", "-c", TICKER]})
    daemon.submit_api(jobName="beta-hello")
    array = daemon.submit_api(jobName="alpha-array", arrayProperties={"size": 3})

    browser.get(url)
    assert "Queues" in browser.title
    assert "default" in browser.find_element(By.ID, "queues").text

    browser.get(f"{url}/jobs")
    names = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr td:first-child a:first-child")}
    assert {"alpha-ticker", "beta-hello", "alpha-array"} <= names
    browser.find_element(By.ID, "prefix").send_keys("alpha")
    browser.find_element(By.ID, "filter").click()
    until("the filtered list", lambda: "prefix=alpha" in browser.current_url)
    names = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr td:first-child a:first-child")}
    assert names == {"alpha-ticker", "alpha-array"}

    daemon.wait_for(ticker, "RUNNING")
    try:
        browser.get(f"{url}/job?id={ticker}")
        log = browser.find_element(By.ID, "log")
        until("the first lines", lambda: "tick" in log.text)
        first = log.text
        page_url = browser.current_url
        grown = until("the log tail to grow", lambda: len(log.text) > len(first) and log.text)
        assert grown.startswith(first.splitlines()[0]) and browser.current_url == page_url  # no reload: the script
    finally:
        daemon.api.call("TerminateJob", {"jobId": ticker, "reason": "the test is done"})
        daemon.wait_for(ticker, "FAILED")

    browser.get(f"{url}/array?id={array}")
    cells = browser.find_elements(By.CSS_SELECTOR, "#grid .cell")
    assert len(cells) == 3
    assert all(c.get_attribute("data-status") for c in cells)


def test_a_browser_answers_the_basic_challenge_and_nothing_shows_without_the_key(
    browser: Any, dashboard: tuple[Daemon, str, str]
) -> None:
    from selenium.webdriver.common.by import By

    daemon, url, _ = dashboard
    daemon.submit_api(jobName="secret-name")
    browser.get(f"{url}/jobs")  # 401: headless, nobody answers the challenge
    assert "secret-name" not in browser.find_element(By.TAG_NAME, "body").text
    login = json.loads(daemon.ok("dashboard", "--json"))
    browser.get(url.replace("http://", f"http://{login['user']}:{login['password']}@") + "/jobs")
    assert "Jobs" in browser.title
    assert "secret-name" in browser.find_element(By.ID, "jobs").text
