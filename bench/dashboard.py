"""The dashboard with 10,000 jobs in Redis: how long until its first page of jobs is on screen.

Starts Redis, moto and the API, records 10,000 jobs for one key (straight into the job store, as
submits would), then opens /dashboard in headless chromium (Debian's, through Selenium), signed in,
five times: the time from the navigation's start to the first page's rows being in the document
(``performance.now()`` as the page sets ``data-first-page-ms``). Target: <= 1 s.

    python -m bench.dashboard [--jobs 10000]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from chalicelib.security.auth import KeyStore
from chalicelib.store.jobs import JobStore
from devtools import servers


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    rds, moto = servers.start_redis(log_dir=log_dir), servers.start_moto(log_dir=log_dir)
    api = None
    driver = None
    try:
        redis_url = f"redis://127.0.0.1:{rds.port}/0"
        key, record = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(name="bench")
        store = JobStore.from_url(redis_url, result_ttl_s=86400, timeout_s=5)
        clock = time.perf_counter()
        for n in range(args.jobs):
            store.create(job_id=str(uuid.uuid4()), job_type=("csm", "whisper", "portrait", "analyze")[n % 4],
                         owner=record.id, params={"text": f"job {n}", "complete_in": 3600, "max_time": 1200},
                         max_attempts=3, metadata={"n": n})
        print(f"{args.jobs} jobs recorded in {time.perf_counter() - clock:.1f} s")
        api = servers.start_api(servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING"),
                                log_dir=log_dir)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
        driver.get(f"{api.url}/dashboard#/sign-in")
        driver.execute_script("sessionStorage.setItem('c3render.key', arguments[0])", key)
        timings = []
        for _ in range(6):
            driver.get("about:blank")
            driver.get(f"{api.url}/dashboard#/jobs")
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.firstPageMs"))
            rows = int(driver.execute_script("return document.body.dataset.jobsShown"))
            timings.append(float(driver.execute_script("return document.body.dataset.firstPageMs")))
        first, rest = timings[0], timings[1:]
        print(f"\ndashboard, {args.jobs} jobs in Redis: first page ({rows} rows) on screen "
              f"{statistics.median(rest):.0f} ms "
              f"after the navigation began (median of {len(rest)}; first, cold load {first:.0f} ms; "
              f"max {max(rest):.0f} ms; target <= 1000 ms)")
    finally:
        if driver is not None:
            driver.quit()
        for server in (api, moto, rds):
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
