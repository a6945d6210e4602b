"""Worker pickup latency (enqueued -> started) and echo-engine throughput.

Starts its own Redis and moto, then one ``python -m worker`` process (echo
engine). Pickup: jobs submitted one at a time to an idle worker; latency is the
job's started_at minus its created_at (both stamped by Redis-side callers on
this machine). Throughput: N jobs queued at once, time until the last one is
success.

    python -m bench.worker_pickup [--jobs 2000] [--pickups 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chalicelib.queues.redis_queue import RedisQueue
from chalicelib.store.jobs import JobStore
from devtools import servers


def submit(store: JobStore, queue: RedisQueue) -> str:
    job_id = str(uuid.uuid4())
    store.create(job_id=job_id, job_type="whisper", owner="bench", max_attempts=3,
                 params={"audio_url": "https://media.example.com/a.mp3", "complete_in": 3600, "max_time": 1200},
                 enqueue_keys=queue.colocated_keys(store.redis))
    return job_id


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--pickups", type=int, default=200)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    rds = servers.start_redis(log_dir=log_dir)
    moto = servers.start_moto(log_dir=log_dir)
    redis_url = f"redis://127.0.0.1:{rds.port}/0"
    env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING")
    store = JobStore.from_url(redis_url, result_ttl_s=3600)
    queue = RedisQueue.from_url(redis_url, name="jobs", lease_s=60)
    worker = servers.start_worker(env, log_dir=log_dir)
    try:
        warm = submit(store, queue)
        while store.get(warm).status.value != "success":
            time.sleep(0.01)
        pickups = []
        for _ in range(args.pickups):
            job_id = submit(store, queue)
            while True:
                job = store.get(job_id)
                if job.started_at is not None and job.status.terminal:
                    break
                time.sleep(0.002)
            pickups.append((job.started_at - job.created_at) * 1000)  # type: ignore[operator]
            time.sleep(0.005)  # let the worker go back to blocking on the queue
        ids = [submit(store, queue) for _ in range(args.jobs)]
        started = time.monotonic()
        last = ids[-1]
        while not store.get(last).status.terminal:
            time.sleep(0.01)
        while store.redis.llen("queue:jobs"):
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        done = sum(1 for j in store.get_many(ids) if j and j.status.value == "success")
    finally:
        worker.stop()
        moto.stop()
        rds.stop()
    print(f"\npickup latency over {len(pickups)} jobs (enqueued -> started, idle worker):")
    print(f"  p50 {statistics.median(pickups):.2f} ms   p95 {pct(pickups, 0.95):.2f} ms   max {max(pickups):.2f} ms")
    print(f"throughput, one worker process, echo engine: {done} jobs in {elapsed:.2f} s = {done / elapsed:.0f} jobs/s")
    return 0 if done == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
