"""The worker against real servers: end to end, kills, duplicates, cancel, limits, shutdown."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from chalicelib.errors import NodeError
from chalicelib.files.storage import ObjectStorage
from chalicelib.jobs import spec as jobspec
from chalicelib.jobs.models import Job, JobStatus
from chalicelib.queues.base import JobQueue
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from tests.helpers import Stack
from worker.context import JobContext
from worker.engines.base import Engine, Output
from worker.engines.deps import EngineDeps
from worker.engines.echo import EchoEngine
from worker.gpu.nodes import Node
from worker.runner import Runner, RunnerConfig

AUDIO = "https://media.example.com/a.mp3"


def test_every_job_type_end_to_end(backend: str, make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(backend)
    stack.start_api()
    stack.start_worker()
    ids = {
        "whisper": stack.submit("whisper", {"audio_url": AUDIO}).json()["id"],
        "analyze": stack.submit("analyze", {"image_url": "https://media.example.com/i.png"}).json()["id"],
        "csm": stack.submit("csm", {"text": "Hello."}).json()["id"],
        "portrait": stack.submit("portrait", {"image_url": "https://media.example.com/i.png",
                                              "text": "Hi"}).json()["id"],
    }
    for job_type, job_id in ids.items():
        view = stack.wait_status(job_id, {"success", "failed"})
        assert view["status"] == "success", view
        assert view["attempt"] == 1 and view["started_at"] and view["finished_at"]
        result = stack.http.get(f"{stack.url}/result/{job_id}").json()
        if job_type in ("csm", "portrait"):
            download = requests.get(result["result_url"], timeout=5)
            assert download.status_code == 200
            with wave.open(io.BytesIO(download.content)) as clip:
                assert clip.getnchannels() == 1 and clip.getnframes() > 0
        else:
            assert result["text"].startswith(f"echo: {job_type} of https://media.example.com/")
    health = stack.http.get(f"{stack.url}/health").json()
    assert health["workers"]["live"] >= 1


def test_worker_killed_mid_job_is_redelivered_and_finishes_once(backend: str,
                                                                make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(backend, ECHO_DELAY_S="4", WORKER_LEASE_S="2")
    stack.start_api()
    doomed = stack.start_worker()
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    stack.wait_status(job_id, {"running"}, timeout_s=15)
    time.sleep(0.5)
    doomed.kill()  # SIGKILL: no chance to release anything
    survivor = stack.start_worker()
    view = stack.wait_status(job_id, {"success", "failed"}, timeout_s=40)
    assert view["status"] == "success" and view["attempt"] == 2, view
    deadline = time.monotonic() + 5  # the status is visible a moment before the line is logged
    while "job success" not in survivor.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivor.log().count("job success") == 1
    assert "job success" not in doomed.log()


def test_duplicate_delivery_of_a_finished_job_does_nothing(make_stack: Callable[..., Stack],
                                                           rds: redis.Redis, settings: Settings) -> None:
    stack = make_stack("redis")
    stack.start_api()
    worker = stack.start_worker()
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    before = stack.wait_status(job_id, {"success"})
    rds.lpush("queue:jobs", job_id)  # the same id delivered again
    rds.lpush("queue:jobs:wake", "1")
    deadline = time.monotonic() + 10
    while "delivery not run: skip" not in worker.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "delivery not run: skip" in worker.log()
    after = stack.status(job_id)
    assert after == before
    assert rds.llen("queue:jobs") == 0 and rds.zcard("queue:jobs:leases") == 0


def test_cancel_a_running_job(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ECHO_DELAY_S="20")
    stack.start_api()
    stack.start_worker()
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    stack.wait_status(job_id, {"running"})
    reply = stack.http.post(f"{stack.url}/jobs/{job_id}/cancel").json()
    assert reply["cancel"] == "cancelling" and reply["cancel_requested"] is True
    started = time.monotonic()
    view = stack.wait_status(job_id, {"cancelled", "success"}, timeout_s=10)
    assert view["status"] == "cancelled" and time.monotonic() - started < 5
    assert "cancel_outcome" not in view


def test_a_cancel_too_late_is_told_to_the_caller(make_stack: Callable[..., Stack]) -> None:
    """The race a worker loses: the cancel lands after the worker's last check, while it stores the
    outputs. Played here as the worker's own store calls, in that order, with the API over HTTP."""
    stack = make_stack("redis")
    stack.start_api()  # no worker: this test is the worker
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    store = JobStore.from_url(stack.env["REDIS_URL"], result_ttl_s=3600)
    assert store.start(job_id, run_token="t", lease_s=30, worker_id="w").action == "run"
    reply = stack.http.post(f"{stack.url}/jobs/{job_id}/cancel").json()
    assert reply["cancel"] == "cancelling" and "cancel_outcome" not in reply
    assert store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "hello"})
    view = stack.status(job_id)
    assert view["status"] == "success" and view["cancel_outcome"] == "too_late", view
    events = stack.http.get(f"{stack.url}/jobs/{job_id}/events").json()["events"]
    assert events[-1]["type"] == "cancel_too_late" and "too late" in events[-1]["message"]
    again = stack.http.post(f"{stack.url}/jobs/{job_id}/cancel").json()
    assert again["cancel"] == "already_finished" and again["cancel_outcome"] == "too_late"


@pytest.mark.parametrize(("job_s", "grace_s", "status", "attempt"), [
    ("2", "25", "success", 1),  # finishes the job in hand
    ("30", "1", "queued", 0),  # past the grace period: released, not counted as a failure
])
def test_sigterm_finishes_or_releases_the_job_and_exits_zero(make_stack: Callable[..., Stack], job_s: str,
                                                             grace_s: str, status: str, attempt: int) -> None:
    stack = make_stack("redis", ECHO_DELAY_S=job_s, WORKER_SHUTDOWN_GRACE_S=grace_s)
    stack.start_api()
    worker = stack.start_worker()
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    stack.wait_status(job_id, {"running"})
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(15) == 0
    view = stack.status(job_id)
    assert view["status"] == status and view["attempt"] == attempt


# -- the runner in-process, for limits that would take minutes through the API ----------


def engine_deps(**env: str) -> EngineDeps:
    return EngineDeps.from_settings(Settings.from_env({"ENV_FILE": "/nonexistent", **env}))


class Flaky(Engine):
    job_type = "whisper"
    fetches_inputs = False  # it never reads its (made-up) audio_url

    def __init__(self, failures: int) -> None:
        super().__init__(engine_deps(), jobspec.builtin().get("whisper"))
        self.failures = failures
        self.calls = 0

    @property
    def needs_node(self) -> bool:
        return False

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        self.calls += 1
        if self.calls <= self.failures:
            raise NodeError("node answered 502")
        return Output(text="fine")


def make_runner(store: JobStore, queue: JobQueue, storage: ObjectStorage, engine: Engine,
                **config: float) -> Runner:
    return Runner(store=store, queue=queue, engines={"whisper": engine}, storage_factory=lambda: storage,
                  config=RunnerConfig(**{"lease_s": 5, "heartbeat_s": 0.2, "retry_base_delay_s": 0.1,
                                         "shutdown_grace_s": 25, **config}))


def submit_direct(store: JobStore, queue: JobQueue, **params: Any) -> str:
    job_id = str(uuid.uuid4())
    store.create(job_id=job_id, job_type="whisper", owner="t", max_attempts=3,
                 params={"audio_url": AUDIO, "complete_in": 3600, "max_time": 1200, **params})
    queue.enqueue(job_id)
    return job_id


def drive(runner: Runner, queue: JobQueue, until: Callable[[], bool], timeout_s: float = 10) -> list[str]:
    runner.heartbeat.start()
    outcomes = []
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        lease = queue.receive(0.5)
        if lease:
            outcomes.append(runner.handle(lease))
    runner.heartbeat.close()
    return outcomes


def test_max_time_ends_timed_out(store: JobStore, make_job_queue: Callable[..., JobQueue],
                                 storage: ObjectStorage) -> None:
    queue = make_job_queue("redis")
    job_id = submit_direct(store, queue, max_time=1)
    slow = EchoEngine(engine_deps(ECHO_DELAY_S="30"), jobspec.builtin().get("whisper"))
    runner = make_runner(store, queue, storage, slow)
    started = time.monotonic()
    outcomes = drive(runner, queue, lambda: store.get(job_id).status.terminal)
    job = store.get(job_id)
    assert outcomes == ["timed_out"] and job.status is JobStatus.TIMED_OUT
    assert "max_time of 1 s" in (job.error or "") and time.monotonic() - started < 5


def test_deadline_passed_before_start_never_runs(store: JobStore, make_job_queue: Callable[..., JobQueue],
                                                 storage: ObjectStorage) -> None:
    queue = make_job_queue("redis")
    job_id = submit_direct(store, queue)
    store.set_fields(job_id, deadline_at=time.time() - 1)
    engine = Flaky(0)
    outcomes = drive(make_runner(store, queue, storage, engine), queue, lambda: store.get(job_id).status.terminal)
    assert outcomes == ["expired"] and engine.calls == 0
    assert store.get(job_id).status is JobStatus.TIMED_OUT


def test_node_errors_are_retried_then_succeed(store: JobStore, make_job_queue: Callable[..., JobQueue],
                                              storage: ObjectStorage) -> None:
    queue = make_job_queue("redis")
    job_id = submit_direct(store, queue)
    engine = Flaky(2)
    outcomes = drive(make_runner(store, queue, storage, engine), queue, lambda: store.get(job_id).status.terminal)
    job = store.get(job_id)
    assert outcomes == ["requeued", "requeued", "success"]
    assert job.status is JobStatus.SUCCESS and job.attempt == 3 and job.result == {"text": "fine"}


def test_node_errors_past_the_attempts_fail_clearly(store: JobStore, make_job_queue: Callable[..., JobQueue],
                                                    storage: ObjectStorage) -> None:
    queue = make_job_queue("redis")
    job_id = submit_direct(store, queue)
    outcomes = drive(make_runner(store, queue, storage, Flaky(99)), queue, lambda: store.get(job_id).status.terminal)
    job = store.get(job_id)
    assert outcomes == ["requeued", "requeued", "failed"]
    assert job.status is JobStatus.FAILED and job.error == "node answered 502" and job.error_kind == "node"
    assert queue.depth() == 0


@pytest.mark.parametrize(("env", "message"), [
    ({"POOL_PLACEMENT": "scatter"}, "POOL_PLACEMENT: expected one of spread, pack, got 'scatter'"),
    # Found while the runners are built, after the settings parsed:
    ({"GPU_PROVIDER": "comput3", "C3_API_KEY": ""}, "C3_API_KEY is required with GPU_PROVIDER=comput3"),
])
def test_a_bad_setting_stops_the_worker_with_its_name_and_no_traceback(env: dict[str, str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "worker"], env={**os.environ, "ENV_FILE": "/nonexistent", **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"worker: configuration error: {message}" in done.stderr
    assert "Traceback" not in done.stderr
