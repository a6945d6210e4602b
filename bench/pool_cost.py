"""GPU cost on a day's trace: the shared pool vs the first version's node-per-worker policy.

A trace of bursty arrivals (quiet hours, a busy working day with bursts) with a
realistic job mix is replayed with time scaled down (1/600 by default: a 90 s launch takes
0.15 s, the 300 s idle timeout 0.5 s) against the devnode's Comput3 emulator and a
real Redis, through the real :class:`GpuPool`. Each worker thread takes the next
job, acquires a node, holds it for the job's (scaled) duration, and releases it.

- shared: all workers share one pool (cap = workers; a launch when jobs waiting per
  node slot > SCALE_UP_QUEUE_PER_NODE or a job has waited SCALE_UP_AFTER_S; idle nodes
  stopped after 300 s), once with each POOL_PLACEMENT: spread (the default: jobs go to the
  least recently used free node, so every node up stays warm) and pack (the most recently
  used, so surplus nodes go idle and stop);
- per-worker (the first version): each worker has its own pool of one node, kept
  300 s after its last job.

Billed node-seconds come from the emulator (launch to stop); busy node-seconds
are the jobs' durations; queue wait is arrival to node acquired, also given as p95 per
segment of the day (night, the day's steady flow, the bursts).

``--volume`` multiplies every arrival rate and burst size, for a busier service (give it
proportionally more ``--workers``).

It also prints a floor: the fewest billed node-seconds any policy that keeps idle nodes
for 300 s could reach on this trace (see :func:`cost_floor`).

    python -m bench.pool_cost [--trace day|flat|bursts|all|FILE.csv] [--policies spread,pack,...]
                              [--hours 24] [--workers 4] [--scale 600] [--volume 1]
                              [--scale-up-after 10] [--queue-per-node 1] [--surplus-idle 300]
    python -m bench.pool_cost --write-traces bench/traces   (the built-in days as CSV files)

A trace file is CSV: a header line ``at_s,type,duration_s[,segment]``, then one job per line
(simulated seconds from the start, the job type, seconds it holds a node; segment night, day or
burst, for the breakdown of waits). bench/traces/ holds the three built-in days in that format.
"""
from __future__ import annotations

import argparse
import csv
import logging
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests

from bench.files import KEY as DEVNODE_KEY
from bench.files import broken_jobs
from chalicelib.jobs.models import Job, JobStatus
from chalicelib.security.auth import KeyStore
from chalicelib.store.pool import PoolStore
from devtools import servers
from tests.media_fixtures import FileServer
from worker.context import JobContext
from worker.gpu.comput3 import Comput3Provider
from worker.gpu.nodes import NodeTemplates
from worker.gpu.pool import GpuPool, PoolConfig

KEY = "bench-c3-key"
MIX = [("csm", 0.40, 12.0), ("whisper", 0.30, 30.0), ("portrait", 0.15, 90.0), ("analyze", 0.15, 6.0)]


@dataclass(frozen=True)
class Arrival:
    at_s: float  # simulated seconds from the start
    job_type: str
    duration_s: float  # simulated
    segment: str = "day"  # night, day (the steady flow) or burst


def day_trace(hours: float, seed: int = 7, volume: float = 1.0) -> list[Arrival]:
    """Quiet nights, a working day with a steady flow and bursts (a batch every 40 minutes)."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []

    def job(at: float, segment: str) -> None:
        kind, _, mean = rng.choices(MIX, weights=[m[1] for m in MIX])[0]
        arrivals.append(Arrival(at, kind, max(1.0, rng.expovariate(1 / mean)), segment))

    t = 0.0
    while t < hours * 3600:
        hour = (t / 3600) % 24
        night = hour < 8 or hour >= 20
        t += rng.expovariate(volume * (1 / 900 if night else 1 / 45))  # jobs per second
        job(t, "night" if night else "day")
    for start in range(8 * 3600, min(int(hours * 3600), 20 * 3600), 2400):
        for _ in range(round(volume * rng.randint(15, 30))):
            job(start + rng.uniform(0, 180), "burst")
    return sorted((a for a in arrivals if a.at_s < hours * 3600), key=lambda a: a.at_s)


def flat_trace(hours: float, seed: int = 11, volume: float = 1.0) -> list[Arrival]:
    """A flat day: the same job rate around the clock (about as many jobs as the working day), no bursts."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    t = rng.expovariate(volume / 60)
    while t < hours * 3600:
        kind, _, mean = rng.choices(MIX, weights=[m[1] for m in MIX])[0]
        arrivals.append(Arrival(t, kind, max(1.0, rng.expovariate(1 / mean)), "day"))
        t += rng.expovariate(volume / 60)
    return arrivals


def bursts_trace(hours: float, seed: int = 13, volume: float = 1.0) -> list[Arrival]:
    """Rare large bursts: a quiet trickle (a job every 10 minutes) and three batches of 80-120 jobs at
    random times of the day, each arriving within five minutes."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []

    def job(at: float, segment: str) -> None:
        kind, _, mean = rng.choices(MIX, weights=[m[1] for m in MIX])[0]
        arrivals.append(Arrival(at, kind, max(1.0, rng.expovariate(1 / mean)), segment))

    t = rng.expovariate(volume / 600)
    while t < hours * 3600:
        job(t, "night")  # the trickle: alone, like the day trace's night
        t += rng.expovariate(volume / 600)
    for _ in range(3):
        start = rng.uniform(0, max(0.0, hours * 3600 - 600))
        for _ in range(round(volume * rng.randint(80, 120))):
            job(start + rng.uniform(0, 300), "burst")
    return sorted((a for a in arrivals if a.at_s < hours * 3600), key=lambda a: a.at_s)


TRACES = {"day": day_trace, "flat": flat_trace, "bursts": bursts_trace}


def read_trace(path: Path) -> list[Arrival]:
    """A trace file: CSV with a header line, then ``at_s,type,duration_s`` per job (simulated seconds
    from the start; the job type; how long it holds a node), optionally a fourth column ``segment``
    (night, day or burst: how the waits are broken down; ``day`` when absent). Lines in any order."""
    arrivals = []
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:3]] != ["at_s", "type", "duration_s"]:
            raise SystemExit(f"{path}: the first line must be the header at_s,type,duration_s[,segment]")
        for number, row in enumerate(rows, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                at_s, kind, duration = float(row[0]), row[1].strip(), float(row[2])
            except (IndexError, ValueError):
                raise SystemExit(f"{path}:{number}: expected at_s,type,duration_s, got {','.join(row)}") from None
            segment = row[3].strip() if len(row) > 3 and row[3].strip() else "day"
            if segment not in SEGMENTS or at_s < 0 or duration <= 0:
                raise SystemExit(f"{path}:{number}: at_s >= 0, duration_s > 0, segment one of {', '.join(SEGMENTS)}")
            arrivals.append(Arrival(at_s, kind, duration, segment))
    if not arrivals:
        raise SystemExit(f"{path}: no jobs")
    return sorted(arrivals, key=lambda a: a.at_s)


def write_trace(trace: list[Arrival], path: Path) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["at_s", "type", "duration_s", "segment"])
        for a in trace:
            out.writerow([f"{a.at_s:.1f}", a.job_type, f"{a.duration_s:.1f}", a.segment])


def cost_floor(trace: list[Arrival], *, launch_s: float = 90.0, idle_s: float = 300.0) -> float:
    """Billed node-seconds no policy can beat on this trace if idle nodes stop after ``idle_s``.

    Whenever a job arrives more than ``idle_s`` after every earlier job has ended (even
    started at once), every node has either run idle for the whole gap or been stopped,
    idle for ``idle_s``, and another launched. Either way the gap costs at least
    min(gap, idle_s + launch_s) node-seconds on top of the jobs' own time; the first job
    costs a launch and the last an idle tail. Overlapping jobs only add nodes and tails.
    """
    floor = sum(a.duration_s for a in trace) + launch_s + idle_s
    busy_until = trace[0].at_s
    for arrival in trace:
        gap = arrival.at_s - busy_until
        if gap > idle_s:
            floor += min(gap, idle_s + launch_s)
        busy_until = max(busy_until, arrival.at_s + arrival.duration_s)
    return floor


class PolicyRun:
    """One policy over the trace: worker threads, a janitor thread, and the figures."""

    def __init__(self, *, workers: int, scale: float, devnode: servers.Server, redis_port: int,
                 shared: bool, jobs_per_node: int = 1, scale_up_after_s: float = 10.0,
                 queue_per_node: float = 1.0, surplus_idle_s: float = 300.0, placement: str = "spread") -> None:
        self.api = f"{devnode.url}/api/v0"
        self.headers = {"X-C3-API-KEY": KEY}
        self.scale = scale
        self.shared = shared
        s = 1 / scale
        templates = NodeTemplates(urls={"health": devnode.url + "/n/{node}/"}, api_key=KEY)
        config = PoolConfig(jobs_per_node=jobs_per_node, max_nodes=workers if shared else 1,
                            scale_up_queue_per_node=queue_per_node, scale_up_after_s=scale_up_after_s * s,
                            idle_timeout_s=300 * s, surplus_idle_s=surplus_idle_s * s, lease_s=3600,
                            ready_timeout_s=600 * s, acquire_timeout_s=3600,
                            expiry_margin_s=120 * s, typical_job_s=1200 * s, unknown_grace_s=3600,
                            janitor_every_s=0.02,
                            poll_s=1.0 * s,  # a waiting job looks every simulated second
                            placement=placement)

        def make_pool(db: int) -> GpuPool:
            client = redis.Redis(port=redis_port, db=db, decode_responses=True)
            client.flushdb()
            provider = Comput3Provider(base_url=self.api, api_key=KEY, node_type="media:fast", lifetime_s=7200 * s,
                                       templates=templates, retries=2, backoff_s=0.05)
            return GpuPool(store=PoolStore(client), provider=provider, config=config)

        self.pools = [make_pool(1 if shared else 1 + i) for i in range(workers)]
        self.jobs: queue.Queue[tuple[Arrival, float] | None] = queue.Queue()
        self.waits: list[tuple[str, float]] = []  # (segment, simulated seconds)
        self.busy = 0.0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.api}/_devnode/stats", headers=self.headers, timeout=5).json())

    def worker(self, pool: GpuPool) -> None:
        dummy = Job(id="bench", type="csm", status=JobStatus.RUNNING, owner="bench", params={}, created_at=0)
        while (item := self.jobs.get()) is not None:
            arrival, arrived = item
            lease = pool.acquire(JobContext(dummy, max_time_s=1200 / self.scale),
                                 queue_depth=self.jobs.qsize())  # as the runner passes the queue's depth
            with self.lock:
                self.waits.append((arrival.segment, (time.monotonic() - arrived) * self.scale))
                self.busy += arrival.duration_s
            time.sleep(arrival.duration_s / self.scale)
            pool.release(lease, gpu_seconds=arrival.duration_s)

    def janitor(self) -> None:
        while not self.done.is_set():
            for pool in (self.pools[:1] if self.shared else self.pools):
                pool.janitor(force=True)
            time.sleep(0.02)

    def run(self, trace: list[Arrival]) -> dict[str, float]:
        before = {b["workload"] for b in self.stats()["billing"]}
        threads = [threading.Thread(target=self.worker, args=(pool,)) for pool in self.pools]
        sweeper = threading.Thread(target=self.janitor)
        for thread in [*threads, sweeper]:
            thread.start()
        started = time.monotonic()
        up_at_burst: list[int] = []  # nodes up (launched, not stopped) as each burst begins
        last_burst = -1e9
        for arrival in trace:
            delay = started + arrival.at_s / self.scale - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if arrival.segment == "burst" and arrival.at_s - last_burst > 600:
                up_at_burst.append(len(self.stats()["running"]))
            if arrival.segment == "burst":
                last_burst = arrival.at_s
            self.jobs.put((arrival, time.monotonic()))
        for _ in threads:
            self.jobs.put(None)
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 1200 / self.scale + 10
        while self.stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.done.set()
        sweeper.join()
        billing = [b for b in self.stats()["billing"] if b["workload"] not in before]
        now = time.time()
        billed = sum(((b["ended"] or now) - b["created"]) * self.scale for b in billing)
        waits = [w for _, w in self.waits]
        by_segment = {seg: percentile([w for s, w in self.waits if s == seg], 0.95) for seg in SEGMENTS}
        return {"billed": billed, "busy": self.busy, "launches": len(billing), "p50": statistics.median(waits),
                "up at burst": statistics.mean(up_at_burst) if up_at_burst else float("nan"),
                "p95": percentile(waits, 0.95), "jobs": len(waits), **{f"p95 {k}": v for k, v in by_segment.items()}}


SEGMENTS = ("night", "day", "burst")


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))] if values else float("nan")


POLICIES: dict[str, tuple[dict[str, Any], str]] = {
    # name: (PolicyRun options, what it is)
    "spread": ({"shared": True}, "shared pool, POOL_PLACEMENT=spread, every idle node kept 300 s (the default)"),
    "pack": ({"shared": True, "placement": "pack"}, "shared pool, POOL_PLACEMENT=pack"),
    "spread-surplus180": ({"shared": True, "surplus_idle_s": 180.0},
                            "spread, GPU_SURPLUS_IDLE_S=180: idle nodes beyond the warm one stop after 180 s"),
    "pack-surplus90": ({"shared": True, "placement": "pack", "surplus_idle_s": 90.0},
                         "pack, GPU_SURPLUS_IDLE_S=90: the ski-rental rule (surplus idles one launch time)"),
    "per-worker": ({"shared": False}, "the first version: one node per worker, each kept 300 s idle"),
}


def run_trace(name: str, trace: list[Arrival], args: argparse.Namespace, policies: list[str]) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    rds = servers.start_redis(log_dir=log_dir, databases=max(16, args.workers + 2))  # a db per worker's pool
    devnode = servers.start_devnode(api_key=KEY, log_dir=log_dir)
    requests.post(f"{devnode.url}/api/v0/_devnode/config", json={"launch_delay_s": 90 / args.scale},
                  headers={"X-C3-API-KEY": KEY}, timeout=5)
    base = {"scale_up_after_s": args.scale_up_after, "queue_per_node": args.queue_per_node,
            "surplus_idle_s": args.surplus_idle}
    try:
        results = {}
        for policy in policies:
            options = {**base, **POLICIES[policy][0]}
            results[policy] = PolicyRun(workers=args.workers, scale=args.scale, devnode=devnode,
                                        redis_port=rds.port, **options).run(trace)
    finally:
        devnode.stop()
        rds.stop()
    report(name, trace, results, args)
    return results


def report(name: str, trace: list[Arrival], results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    busy_total = sum(a.duration_s for a in trace)
    print(f"\ntrace {name}: {len(trace)} jobs over {args.hours:g} simulated hours ({busy_total / 3600:.1f} busy "
          f"node-hours; " + ", ".join(f"{seg} {sum(a.segment == seg for a in trace)}" for seg in SEGMENTS)
          + f"), {args.workers} workers, time scaled 1/{args.scale:g}, launch 90 s, idle timeout 300 s")
    v1 = results.get("per-worker")
    print(f"{'policy':22} {'billed node-s':>14} {'billed/busy':>12} {'vs v1':>6} {'launches':>9} "
          f"{'wait p50 s':>11} {'wait p95 s':>11} {'vs v1':>6}" + "".join(f"{'p95 ' + seg:>11}" for seg in SEGMENTS)
          + f"{'up at burst':>12}")
    for policy, r in results.items():
        billed_ratio = f"{r['billed'] / v1['billed']:6.2f}" if v1 else "     -"
        wait_ratio = f"{r['p95'] / v1['p95']:6.2f}" if v1 else "     -"
        segments = "".join(f"{r['p95 ' + seg]:11.1f}" for seg in SEGMENTS)
        print(f"{policy:22} {r['billed']:14.0f} {r['billed'] / r['busy']:12.2f} {billed_ratio} {r['launches']:9.0f} "
              f"{r['p50']:11.1f} {r['p95']:11.1f} {wait_ratio}{segments}{r['up at burst']:12.1f}")
    floor = cost_floor(trace)
    print(f"floor for any policy that keeps an idle node up to 300 s: {floor:.0f} billed node-s "
          f"(billed/busy >= {floor / busy_total:.2f}" + (f", {floor / v1['billed']:.2f} of v1)" if v1 else ")"))
    sys.stdout.flush()


def broken_inputs(count: int) -> None:
    """Jobs that could never run (broken inputs) on a cold Comput3 pool, through the real API and worker:
    how many nodes they caused to launch (the input checks run before a node is asked for)."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench-broken-"))
    work = Path(tempfile.mkdtemp(prefix="bench-broken-inputs-"))
    (work / "notes.txt").write_text("not audio\n" * 50)
    rds, moto = servers.start_redis(log_dir=log_dir), servers.start_moto(log_dir=log_dir)
    devnode = servers.start_devnode(api_key=DEVNODE_KEY, log_dir=log_dir)  # the key broken_jobs speaks with
    files = FileServer(work)
    try:
        redis_url = f"redis://127.0.0.1:{rds.port}/0"
        key, _ = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(
            name="bench", rate_per_s=1e6, burst=1_000_000, max_queued=10_000_000)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING", WORKER_LEASE_S="60")
        failed, launched, with_node, jobs = broken_jobs(count, env=env, devnode=devnode, files=files, http=http,
                                                        log_dir=log_dir)
    finally:
        files.close()
        for server in (devnode, moto, rds):
            server.stop()
    print(f"\njobs that could never run: {jobs} with broken inputs (not audio, missing, not an image) through "
          f"the API and a worker on a cold Comput3 pool: {failed} failed naming the field, {launched} nodes "
          f"launched for them, {with_node} with a node or GPU seconds in their view")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trace", default="day",
                        help="day, flat, bursts (built in), all (the three), or a CSV file (see read_trace)")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help=f"comma-separated, of: {', '.join(POLICIES)}")
    parser.add_argument("--write-traces", type=Path, default=None,
                        help="write the built-in traces as CSV files into this directory, and stop")
    parser.add_argument("--broken", type=int, default=40,
                        help="also replay this many jobs with broken inputs through the API and a worker (0: skip)")
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scale", type=float, default=600)
    parser.add_argument("--volume", type=float, default=1.0, help="multiply every arrival rate and burst size")
    parser.add_argument("--scale-up-after", type=float, default=10.0, help="SCALE_UP_AFTER_S (simulated s)")
    parser.add_argument("--queue-per-node", type=float, default=1.0, help="SCALE_UP_QUEUE_PER_NODE")
    parser.add_argument("--surplus-idle", type=float, default=300.0,
                        help="GPU_SURPLUS_IDLE_S (simulated s) of the policies that do not set their own")
    args = parser.parse_args()
    if args.write_traces:
        args.write_traces.mkdir(parents=True, exist_ok=True)
        for name, make in TRACES.items():
            write_trace(make(args.hours, volume=args.volume), args.write_traces / f"{name}.csv")
        return 0
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies {unknown}; known: {', '.join(POLICIES)}")
    # Every policy's pools share one emulator: each sees the others' nodes as unknown workloads (kept
    # for unknown_grace_s, an hour); the reconciliation's warnings about them are noise here.
    logging.getLogger("worker.gpu.pool").setLevel(logging.ERROR)
    if args.trace == "all":
        traces = {name: make(args.hours, volume=args.volume) for name, make in TRACES.items()}
    elif args.trace in TRACES:
        traces = {args.trace: TRACES[args.trace](args.hours, volume=args.volume)}
    else:
        traces = {Path(args.trace).name: read_trace(Path(args.trace))}
    for policy in policies:
        print(f"{policy}: {POLICIES[policy][1]}")
    for name, trace in traces.items():
        run_trace(name, trace, args, policies)
    if args.broken:
        broken_inputs(args.broken)
    return 0


if __name__ == "__main__":
    sys.exit(main())
