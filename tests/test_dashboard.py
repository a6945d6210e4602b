"""The dashboard at /dashboard, in a real browser (Debian's chromium, driven by Selenium)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from devtools import servers
from tests.helpers import Stack, devnode_stack
from tests.media_fixtures import red_square

ADMIN = "dashboard-admin-key"


@pytest.fixture(scope="module")
def stack(redis_server: servers.Server, moto: servers.Server, devnode: servers.Server,
          log_dir: Path) -> Iterator[Stack]:
    stack = devnode_stack(redis_server, moto, devnode, log_dir, db=8, ADMIN_API_KEY=ADMIN, GPU_PRICE_PER_HOUR="3.6")
    yield stack
    stack.close()


def sign_in(browser: Any, url: str, key: str) -> None:
    browser.execute_script("sessionStorage.clear()") if browser.current_url.startswith(url) else None
    browser.get(f"{url}/dashboard#/sign-in")
    field = WebDriverWait(browser, 20).until(expected_conditions.visibility_of_element_located((By.ID, "key")))
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    WebDriverWait(browser, 20).until(expected_conditions.visibility_of_element_located((By.ID, "jobs-table")))


def problems(browser: Any) -> list[dict[str, Any]]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_sign_in_submit_a_job_watch_it_finish_and_play_it(stack: Stack, browser: Any, screenshots: Path) -> None:
    page = requests.get(f"{stack.url}/dashboard", timeout=10)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and stack.env["S3_ENDPOINT_URL"] in csp
    assert "<script>" not in page.text  # no inline script: the page's code is dashboard/dashboard.js
    browser.get_log("browser")
    sign_in(browser, stack.url, stack.key)
    assert stack.key not in browser.current_url  # the key is in sessionStorage, never in a URL
    # A job through the form: csm, its text typed in.
    browser.get(f"{stack.url}/dashboard#/new")
    Select(WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.ID, "new-type")))
           ).select_by_value("csm")
    text = WebDriverWait(browser, 10).until(expected_conditions.visibility_of_element_located(
        (By.CSS_SELECTOR, '#new-fields [name="text"]')))
    text.send_keys("Hello from the dashboard. This is a test.")
    browser.save_screenshot(str(screenshots / "dashboard-new.png"))
    browser.find_element(By.CSS_SELECTOR, "#new-form button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.jobStatus") == "success")
    media = WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "result-media")))
    assert media.tag_name == "audio"
    played = browser.execute_script(
        "const a = document.getElementById('result-media'); a.muted = true;"
        "return a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 1200)));")
    assert played > 0.3, played  # it plays, from the bucket (media-src allows the storage origin)
    events = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#job-events li")]
    assert any("queued" in e for e in events) and any("finished" in e for e in events)
    assert "Hello from the dashboard" in browser.find_element(By.ID, "job-input").text
    browser.save_screenshot(str(screenshots / "dashboard-job.png"))
    # The jobs table lists it.
    browser.get(f"{stack.url}/dashboard#/jobs")
    WebDriverWait(browser, 10).until(lambda d: int(d.execute_script("return document.body.dataset.jobsShown || 0")) > 0)
    browser.save_screenshot(str(screenshots / "dashboard-jobs.png"))
    assert not problems(browser), problems(browser)  # nothing refused by the CSP, no script error


def test_a_job_holding_markup_shows_it_as_text(stack: Stack, browser: Any) -> None:
    hostile = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>"
    job = stack.submit("analyze", {"image_url": "https://media.example.com/x.png", "prompt": hostile,
                                   "metadata": {"note": hostile}}).json()
    sign_in(browser, stack.url, stack.key)
    browser.get(f"{stack.url}/dashboard#/jobs/{job['id']}")
    WebDriverWait(browser, 20).until(lambda d: "onerror" in d.find_element(By.ID, "job-metadata").text)
    assert "<script>window.pwned=2</script>" in browser.find_element(By.ID, "job-input").text  # as text
    assert browser.execute_script("return window.pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#job img, #job script")


def test_admins_see_the_gpu_nodes_and_every_tenants_jobs(stack: Stack, browser: Any, screenshots: Path,
                                                        tmp_path: Path) -> None:
    other, _ = stack.new_key("another tenant")
    theirs = requests.post(f"{stack.url}/analyze", json={"image_url": "https://media.example.com/y.png"},
                           headers={"Authorization": f"Bearer {other}"}, timeout=10).json()["id"]
    sign_in(browser, stack.url, ADMIN)
    WebDriverWait(browser, 10).until(
        lambda d: theirs[:8] in d.find_element(By.ID, "jobs-table").text)  # every tenant's jobs
    assert browser.find_element(By.ID, "nav-nodes").is_displayed()
    browser.get(f"{stack.url}/dashboard#/nodes")
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nodes-table tbody tr")) > 0)
    assert "Billed" in browser.find_element(By.ID, "nodes-total").text
    browser.save_screenshot(str(screenshots / "dashboard-nodes.png"))
    # A form with a file: the image is uploaded straight to the bucket (connect-src allows it).
    image = red_square(tmp_path / "red.png")
    browser.get(f"{stack.url}/dashboard#/new")
    Select(WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.ID, "new-type")))
           ).select_by_value("analyze")
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, '[name="image_url__file"]'))).send_keys(str(image))
    browser.find_element(By.CSS_SELECTOR, "#new-form button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.jobStatus") == "success")
    assert "red" in browser.find_element(By.ID, "result-text").text.lower()
    time.sleep(0.2)
    assert not problems(browser), problems(browser)
