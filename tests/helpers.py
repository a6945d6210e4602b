"""Test helpers: the stack of real servers a test drives, settings and small builders.

Fixtures are in ``conftest.py`` (pytest finds them); what tests import lives here.
"""
from __future__ import annotations

import dataclasses
import re
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import requests

from chalicelib.jobs.models import Job, JobStatus
from chalicelib.security.auth import ApiKey, KeyStore
from chalicelib.settings import Settings
from devtools import servers
from worker.context import JobContext
from worker.gpu.pool import PoolConfig

DEVNODE_KEY = "devnode-test-key"



def make_settings(redis_url: str, moto_url: str, **env: str) -> Settings:
    return Settings.from_env(servers.stack_env(redis_url=redis_url, s3_url=moto_url, **env))


def queue_url_for(backend: str) -> str:
    return "redis" if backend == "redis" else f"sqs://jobs-{uuid.uuid4().hex[:10]}"


class Stack:
    """The API (gunicorn) and worker processes over one Redis, moto and queue."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.api: servers.Server | None = None
        self.workers: list[servers.Server] = []
        self.http = requests.Session()

    def start_api(self, **env: str) -> servers.Server:
        port = servers.free_port()
        self.env.setdefault("PUBLIC_API_URL", f"http://127.0.0.1:{port}")  # lasting links: API and workers
        self.api = servers.start_api({**self.env, **env}, port, log_dir=self.log_dir)
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
        """POST a job. With ``Prefer="wait=N"`` the API holds the answer up to N s: the read waits that long too."""
        wait = re.search(r"\bwait=(\d+)", headers.get("Prefer", ""))
        return self.http.post(f"{self.url}/{job_type}", json=body, headers=headers,
                              timeout=5 + (int(wait.group(1)) if wait else 0))

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


def devnode_stack(redis_server: servers.Server, moto: servers.Server, devnode: servers.Server, log_dir: Path, *,
                  db: int, **env: str) -> Stack:
    """An API and one worker with the real engines on the devnode, over an emptied Redis database ``db``
    (started; the caller closes it)."""
    settings = servers.stack_env(redis_url=f"redis://127.0.0.1:{redis_server.port}/{db}", s3_url=moto.url,
                                 WORKER_LEASE_S="20", **servers.devnode_env(devnode, DEVNODE_KEY), **env)
    redis.Redis.from_url(settings["REDIS_URL"]).flushdb()
    stack = Stack(env=settings, log_dir=log_dir)
    stack.start_api()
    stack.start_worker()
    return stack


def pool_config(*, can_launch: bool = True, **overrides: Any) -> PoolConfig:
    """The pool's config from default settings, with some values changed."""
    base = PoolConfig.from_settings(Settings.from_env({"ENV_FILE": "/nonexistent"}), can_launch=can_launch)
    return dataclasses.replace(base, **overrides)


def job_ctx(job_type: str = "csm", *, max_time_s: float = 60) -> JobContext:
    """A running job's context, for driving the pool or an engine directly."""
    job = Job(id=f"j-{uuid.uuid4().hex[:6]}", type=job_type, status=JobStatus.RUNNING, owner="t", params={},
              created_at=0)
    return JobContext(job, max_time_s=max_time_s)


class Documented:
    """Bodies checked against the schemas of the API's own OpenAPI document (formats included)."""

    def __init__(self, stack: Stack) -> None:
        import jsonschema

        self.doc = requests.get(f"{stack.url}/openapi.json", timeout=10).json()
        self._jsonschema = jsonschema

    def check(self, component: str, body: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{component}", "components": self.doc["components"]}
        validator = self._jsonschema.Draft202012Validator(
            schema, format_checker=self._jsonschema.Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (component, errors, body)
