"""The interactive documentation at /docs, in a real browser (Debian's chromium)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import Stack


def test_the_docs_page_renders_every_operation_from_this_origin_only(api_module: Stack, browser: Any,
                                                                    screenshots: Path) -> None:
    page = requests.get(f"{api_module.url}/docs", timeout=10)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert "<script>" not in page.text and "//" not in page.text.replace("<!DOCTYPE", "")  # no inline or CDN code
    slash = requests.get(f"{api_module.url}/docs/", timeout=10, allow_redirects=False)  # one URL per page
    assert slash.status_code == 308 and slash.headers["Location"] == "/docs"
    root = requests.get(f"{api_module.url}/", timeout=10).json()
    assert root["status"] == "C3 Render API is running" and root["docs"] == "/docs"

    browser.get_log("browser")  # drop anything from before
    browser.get(f"{api_module.url}/docs")
    title = WebDriverWait(browser, 30).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
    assert "C3 Render API" in title.text
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 30)
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/csm", "/whisper", "/portrait", "/analyze", "/uploads", "/voices", "/jobs/{job_id}/events"} <= paths
    # Open one operation: its request body schema and an example render.
    browser.find_element(By.CSS_SELECTOR, "#operations-jobs-submit_csm .opblock-summary").click()
    example = (By.CSS_SELECTOR, "#operations-jobs-submit_csm .body-param__example")
    WebDriverWait(browser, 10).until(expected_conditions.visibility_of_element_located(example))
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(
        By.CSS_SELECTOR, "#operations-jobs-submit_csm .opblock-section-request-body"))
    time.sleep(0.5)  # let the expanded block paint before the screenshot
    browser.save_screenshot(str(screenshots / "docs.png"))
    problems = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems  # nothing refused by the CSP, nothing missing
