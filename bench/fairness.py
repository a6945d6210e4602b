"""One key's flood against the others' jobs: what the shared queue gives a second tenant today.

The scenario of issue 24, with time scaled down (1/600 by default: a 90 s portrait holds its slot
for 0.15 s). Key A submits ``--flood`` mixed jobs at once (portraits 90 s, speech 10 s, transcripts
8 s, analyses 6 s of GPU, drawn at random with a fixed seed); keys B and C each submit one 6 s
analysis every 30 s (simulated) for as long as A's flood lasts. ``--slots`` workers stand for the
node slots (2: the default two nodes, one job each): each takes the next job off the real Redis
queue, starts it in the real job store, holds its slot for the job's scaled duration, finishes it
and acknowledges it, as the worker's runner does around an engine.

It prints B's and C's queue waits (submit to start, simulated seconds; p50, p95, max), A's
completion time, the slot-seconds left idle while work was queued, and the target the fair
scheduler is held to: B's and C's p95 wait at most the longest job running when they arrive plus
10 s. Today's queue is one first-in-first-out line, so their jobs wait behind the whole flood.

    python -m bench.fairness [--flood 1000] [--slots 2] [--scale 600] [--seed 7]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from chalicelib.jobs.models import JobStatus
from chalicelib.queues.redis_queue import RedisQueue
from chalicelib.store.jobs import JobStore
from devtools import servers

# GPU seconds a job holds its node slot, by type (simulated).
DURATION_S = {"portrait": 90.0, "csm": 10.0, "whisper": 8.0, "analyze": 6.0}
PARAMS = {"complete_in": 3600, "max_time": 1200}
TRICKLE_EVERY_S = 30.0  # B and C: one analysis each, this often (simulated)
LONGEST_S = max(DURATION_S.values())


class Run:
    def __init__(self, store: JobStore, queue: RedisQueue, scale: float) -> None:
        self.store, self.queue, self.scale = store, queue, scale
        self.duration: dict[str, float] = {}
        self.ended: Counter[str] = Counter()  # jobs ended, by owner: counted here, not polled from Redis
        self.owner: dict[str, str] = {}
        self.lock = threading.Lock()
        self.flood_done = threading.Event()
        self.idle_while_queued_s = 0.0  # real seconds a slot spent waiting in receive while jobs were queued

    def submit(self, owner: str, job_type: str) -> str:
        job_id = str(uuid.uuid4())
        with self.lock:
            self.duration[job_id], self.owner[job_id] = DURATION_S[job_type], owner
        self.store.create(job_id=job_id, job_type=job_type, owner=owner, max_attempts=1, params=dict(PARAMS),
                          enqueue_keys=self.queue.colocated_keys(self.store.redis))
        return job_id

    def slot(self, name: str, stop: threading.Event) -> None:
        while not stop.is_set():
            queued_before = self.queue.depth() > 0
            asked = time.monotonic()
            lease = self.queue.receive(0.2)
            if queued_before:
                with self.lock:
                    self.idle_while_queued_s += time.monotonic() - asked
            if lease is None:
                continue
            token = uuid.uuid4().hex
            if self.store.start(lease.job_id, run_token=token, lease_s=600, worker_id=name).action != "run":
                self.queue.ack(lease)
                continue
            time.sleep(self.duration[lease.job_id] / self.scale)
            self.store.finish(lease.job_id, run_token=token, status=JobStatus.SUCCESS, result={"text": "ok"},
                              gpu_seconds=self.duration[lease.job_id])
            self.queue.ack(lease)
            with self.lock:
                self.ended[self.owner[lease.job_id]] += 1

    def wait_ended(self, owner: str, count: int) -> None:
        while True:
            with self.lock:
                if self.ended[owner] >= count:
                    return
            time.sleep(0.01)

    def trickle(self, owner: str, offset_s: float, out: list[str]) -> None:
        time.sleep(offset_s / self.scale)
        while not self.flood_done.is_set():
            out.append(self.submit(owner, "analyze"))
            self.flood_done.wait(TRICKLE_EVERY_S / self.scale)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def waits(store: JobStore, ids: list[str], scale: float) -> list[float]:
    """Submit to start, in simulated seconds (both stamped by Redis-side callers)."""
    jobs = [j for j in store.get_many(ids) if j is not None and j.started_at is not None]
    return [(j.started_at - j.created_at) * scale for j in jobs]  # type: ignore[operator]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--scale", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    rds = servers.start_redis(log_dir=log_dir)
    url = f"redis://127.0.0.1:{rds.port}/0"
    store = JobStore.from_url(url, result_ttl_s=3600)
    run = Run(store, RedisQueue.from_url(url, name="jobs", lease_s=600), args.scale)
    stop = threading.Event()
    b_ids: list[str] = []
    c_ids: list[str] = []
    try:
        flood = [run.submit("key-a", rng.choice(list(DURATION_S))) for _ in range(args.flood)]
        gpu_s = sum(run.duration[i] for i in flood)
        started = time.monotonic()
        slots = [threading.Thread(target=run.slot, args=(f"slot{n}", stop), daemon=True) for n in range(args.slots)]
        trickles = [threading.Thread(target=run.trickle, args=("key-b", 1.0, b_ids), daemon=True),
                    threading.Thread(target=run.trickle, args=("key-c", 16.0, c_ids), daemon=True)]
        for thread in slots + trickles:
            thread.start()
        run.wait_ended("key-a", len(flood))
        a_done_s = (time.monotonic() - started) * args.scale
        run.flood_done.set()
        for thread in trickles:
            thread.join()
        run.wait_ended("key-b", len(b_ids))
        run.wait_ended("key-c", len(c_ids))
        stop.set()
        for thread in slots:
            thread.join(5)
        b, c = waits(store, b_ids, args.scale), waits(store, c_ids, args.scale)
    finally:
        stop.set()
        rds.stop()
    print(f"\nthe flood: key A, {args.flood} mixed jobs at once ({gpu_s:.0f} GPU s); keys B and C one "
          f"{DURATION_S['analyze']:.0f} s analysis each every {TRICKLE_EVERY_S:.0f} s; {args.slots} node slots; "
          f"time 1/{args.scale:.0f} (simulated seconds below)")
    print(f"  A's flood done after {a_done_s:.0f} s (the slots' floor: {gpu_s / args.slots:.0f} s)")
    for name, values in (("B", b), ("C", c)):
        print(f"  {name}: {len(values)} jobs, wait p50 {statistics.median(values):.0f} s"
              f"   p95 {pct(values, 0.95):.0f} s   max {max(values):.0f} s")
    print(f"  slot-seconds idle while jobs were queued: {run.idle_while_queued_s * args.scale:.0f}")
    print(f"  the fair scheduler's target (issue 24): B's and C's p95 at most {LONGEST_S + 10:.0f} s "
          "(the longest job, plus 10 s); A's completion within 2% of this run's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
