"""The dashboard at /dashboard, in a real browser (Debian's chromium, driven by Selenium)."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from chalicelib.jobs.models import JobStatus
from chalicelib.store.jobs import JobStore
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
    # The timeline in words, each event once: never "queued queued" or "finished finished".
    words = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#job-events li .event")]
    assert words[0] == "Queued" and words[-1] == "Finished" and words.count("Queued") == 1, words
    assert "Picked up by a worker" in words, words
    assert not any(len(w.split()) > 1 and w.split()[0].lower() == w.split()[1].lower() for w in words), words
    assert len(words) == len(browser.find_elements(By.CSS_SELECTOR, "#job-events li"))
    assert "Hello from the dashboard" in browser.find_element(By.ID, "job-input").text
    # A short clip reads as its length in seconds (the browser's own player showed "0:00 / 0:00").
    shown = browser.find_element(By.ID, "result-time").text
    assert re.fullmatch(r"\d+\.\d / \d+\.\d s", shown) and not shown.endswith("/ 0.0 s"), shown
    facts = browser.find_element(By.ID, "result-facts").text
    assert re.search(r"Duration: \d+\.\d s", facts) and "duration_s" not in facts, facts
    assert browser.find_element(By.ID, "job-webhooks").text == "No webhook was requested."
    status_card = browser.find_element(By.ID, "job-facts").text
    assert "GPU time" in status_card and "gpu_seconds" not in status_card
    # The ended job's Cancel is disabled, and plainly so: not faded out, a dashed edge, no pointer.
    cancel = browser.find_element(By.ID, "job-cancel")
    assert cancel.is_displayed() and not cancel.is_enabled()
    look = browser.execute_script(
        "const s = getComputedStyle(arguments[0]); return [s.opacity, s.borderTopStyle, s.cursor, s.color];", cancel)
    assert look[:3] == ["1", "dashed", "not-allowed"] and look[3] != "rgba(0, 0, 0, 0)", look
    assert cancel.get_attribute("title") == "The job has ended: nothing to cancel"
    browser.save_screenshot(str(screenshots / "dashboard-job.png"))
    # Usage names the key, its id beside it.
    browser.get(f"{stack.url}/dashboard#/usage")
    name = WebDriverWait(browser, 10).until(expected_conditions.visibility_of_element_located(
        (By.CSS_SELECTOR, f'#usage-table tr[data-key="{stack.key_record.id}"] .key-name')))
    assert name.text == "tests"
    browser.save_screenshot(str(screenshots / "dashboard-usage.png"))
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


@pytest.fixture(scope="module")
def idle(redis_server: servers.Server, moto: servers.Server, log_dir: Path) -> Iterator[tuple[Stack, JobStore]]:
    """An API with no worker, and its job store: the test plays the worker, so a job is running, or
    ends, exactly when the test says."""
    settings = servers.stack_env(redis_url=f"redis://127.0.0.1:{redis_server.port}/9", s3_url=moto.url)
    redis.Redis.from_url(settings["REDIS_URL"]).flushdb()
    stack = Stack(env=settings, log_dir=log_dir)
    stack.start_api()
    yield stack, JobStore.from_url(settings["REDIS_URL"], result_ttl_s=3600)
    stack.close()


def analyze_job(stack: Stack) -> str:
    reply = stack.submit("analyze", {"image_url": "https://media.example.com/x.png", "prompt": "What is it?"})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def test_a_missing_job_leaves_nothing_of_the_last_one_and_a_link_survives_sign_in(
        idle: tuple[Stack, JobStore], browser: Any, screenshots: Path) -> None:
    stack, store = idle
    job_id = analyze_job(stack)
    assert store.start(job_id, run_token="t", lease_s=60, worker_id="test").action == "run"
    store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "a red square"})
    sign_in(browser, stack.url, stack.key)
    browser.get(f"{stack.url}/dashboard#/jobs/{job_id}")
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "result-text").text == "a red square")
    assert browser.find_element(By.ID, "job-delete").is_enabled()
    missing = "0" * 8 + job_id[8:]
    browser.execute_script("location.hash = arguments[0]", f"#/jobs/{missing}")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "job-title").text == "Job not found")
    assert missing in browser.find_element(By.ID, "job-message").text
    for part in ("job-body", "job-actions"):  # its result, timeline and the buttons that would act on it
        assert not browser.find_element(By.ID, part).is_displayed(), part
    assert job_id not in browser.find_element(By.ID, "job").text
    assert not browser.find_elements(By.ID, "result-text")
    assert browser.find_element(By.CSS_SELECTOR, "#job-back a").get_attribute("href").endswith("#/jobs")
    browser.save_screenshot(str(screenshots / "dashboard-not-found.png"))
    # A link to a job opened before signing in: the sign-in says where it leads, and goes there.
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{stack.url}/dashboard#/jobs/{job_id}")
    WebDriverWait(browser, 10).until(expected_conditions.visibility_of_element_located((By.ID, "key")))
    assert browser.find_element(By.ID, "sign-in-next").text == f"Sign in to open job {job_id}."
    browser.find_element(By.ID, "key").send_keys(stack.key)
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "job-title").text == f"analyze job {job_id}")
    assert browser.current_url.endswith(f"#/jobs/{job_id}")
    unexpected = [p for p in problems(browser) if f"/jobs/{missing} " not in p["message"]]  # its 404 is
    assert not unexpected, unexpected


def test_a_cancel_that_came_too_late_is_told(idle: tuple[Stack, JobStore], browser: Any, screenshots: Path) -> None:
    stack, store = idle
    job_id = analyze_job(stack)
    assert store.start(job_id, run_token="t", lease_s=60, worker_id="test").action == "run"
    sign_in(browser, stack.url, stack.key)
    browser.get(f"{stack.url}/dashboard#/jobs/{job_id}")
    cancel = WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.ID, "job-cancel")))
    cancel.click()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "job-notice").text.startswith("Cancel requested"))
    assert not browser.find_element(By.ID, "job-cancel").is_enabled()  # asked once
    # The job ends on its own before the worker stopped it: the page, still watching, says so.
    store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "done anyway"})
    notice = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "#job-notice.warn"))
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "result-text").text == "done anyway")
    assert notice.text == "Cancel came too late: the job had already finished. Its result is below."
    words = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#job-events li .event")]
    assert words[-3:] == ["Cancel requested", "Finished", "Cancel came too late: the job had already finished"], words
    browser.save_screenshot(str(screenshots / "dashboard-cancel-too-late.png"))
    # Opened later, the page still tells it.
    browser.get(f"{stack.url}/dashboard#/jobs")
    browser.get(f"{stack.url}/dashboard#/jobs/{job_id}")
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "job-notice").text.startswith("Cancel came too late"))
    assert not problems(browser), problems(browser)
