"""One contract, every queue adapter: the Redis queue and SQS (moto server)."""
from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chalicelib.errors import QueueUnavailable
from chalicelib.queues.base import JobQueue
from chalicelib.queues.redis_queue import RedisQueue


def drain(queue: JobQueue, wait_s: float = 0.5) -> list[str]:
    got = []
    while (lease := queue.receive(wait_s)) is not None:
        got.append(lease.job_id)
        queue.ack(lease)
    return got


def test_enqueue_receive_ack(backend: str, make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend)
    for i in range(3):
        queue.enqueue(f"job-{i}")
    assert queue.depth() == 3
    received = []
    for _ in range(3):
        lease = queue.receive(2)
        assert lease is not None
        received.append(lease.job_id)
        assert queue.ack(lease) is True
    assert sorted(received) == ["job-0", "job-1", "job-2"]
    assert queue.receive(0.2) is None
    assert queue.depth() == 0


def test_leased_id_is_invisible_until_the_lease_expires(backend: str,
                                                        make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend, lease_s=1)
    queue.enqueue("lost-job")
    first = queue.receive(2)
    assert first is not None and first.job_id == "lost-job"
    assert queue.receive(0.3) is None  # leased: nobody else sees it
    # The holder dies without acking; after the lease the id comes back.
    again = queue.receive(5)
    assert again is not None and again.job_id == "lost-job"
    assert queue.ack(again) is True
    assert queue.receive(1.2) is None


def test_extend_keeps_the_lease(backend: str, make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend, lease_s=1)
    queue.enqueue("long-job")
    lease = queue.receive(2)
    assert lease is not None
    for _ in range(3):
        time.sleep(0.5)
        assert queue.extend(lease, 1) is True
    assert queue.receive(0.2) is None  # 1.5 s later, still ours
    assert queue.ack(lease) is True


def test_nack_returns_the_id_now_or_later(backend: str, make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend)
    queue.enqueue("retry-me")
    lease = queue.receive(2)
    assert lease is not None
    assert queue.nack(lease) is True
    again = queue.receive(2)
    assert again is not None and again.job_id == "retry-me"
    assert queue.nack(again, delay_s=1.5) is True
    started = time.monotonic()
    assert queue.receive(0.5) is None
    later = queue.receive(5)
    assert later is not None and later.job_id == "retry-me"
    assert time.monotonic() - started >= 1.0
    queue.ack(later)


def test_delayed_enqueue(backend: str, make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend)
    queue.enqueue("later", delay_s=1.5)
    assert queue.receive(0.3) is None
    lease = queue.receive(5)
    assert lease is not None and lease.job_id == "later"
    queue.ack(lease)


def test_receive_waits_no_longer_than_asked(backend: str, make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend)
    started = time.monotonic()
    assert queue.receive(1) is None
    assert 0.8 <= time.monotonic() - started < 3.5


def test_nothing_lost_across_many_ids(backend: str, make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue(backend)
    ids = {f"id-{i}" for i in range(40)}
    for job_id in ids:
        queue.enqueue(job_id)
    assert set(drain(queue)) == ids


# -- Redis-specific guarantees -------------------------------------------------


def test_redis_queue_is_fifo_and_wakes_a_blocked_receiver(make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue("redis")
    for i in range(5):
        queue.enqueue(f"j{i}")
    assert drain(queue, wait_s=0.1) == [f"j{i}" for i in range(5)]
    import threading
    got: list[float] = []

    def receive() -> None:
        lease = queue.receive(5)
        got.append(time.monotonic())
        assert lease is not None

    thread = threading.Thread(target=receive)
    thread.start()
    time.sleep(0.3)
    sent = time.monotonic()
    queue.enqueue("wake")
    thread.join(6)
    assert got and got[0] - sent < 0.2  # woken by the enqueue, not by polling


def test_redis_stale_token_cannot_settle(make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue("redis", lease_s=0.5)
    queue.enqueue("x")
    old = queue.receive(1)
    assert old is not None
    time.sleep(0.7)
    new = queue.receive(1)  # reclaimed and leased again
    assert new is not None and new.token != old.token
    assert queue.ack(old) is False
    assert queue.extend(old, 10) is False
    assert queue.ack(new) is True


def test_redis_queue_unavailable() -> None:
    from devtools.servers import free_port
    queue = RedisQueue.from_url(f"redis://127.0.0.1:{free_port()}/0", name="jobs", lease_s=5)
    with pytest.raises(QueueUnavailable):
        queue.enqueue("x")


def test_only_a_redis_queue_on_the_same_server_enqueues_atomically(redis_url: str,
                                                                   make_job_queue: Callable[..., JobQueue]) -> None:
    from chalicelib.store.jobs import JobStore
    same = JobStore.from_url(redis_url, result_ttl_s=60)
    other_db = JobStore.from_url(redis_url.rsplit("/", 1)[0] + "/3", result_ttl_s=60)
    assert make_job_queue("redis").colocated_keys(same.redis) == ("queue:jobs", "queue:jobs:wake", 1000)
    assert make_job_queue("redis").colocated_keys(other_db.redis) is None
    assert make_job_queue("sqs").colocated_keys(same.redis) is None
