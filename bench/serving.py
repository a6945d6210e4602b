"""The API's serving model under load that would stall a sync server, measured side by side in one run.

Starts its own Redis and moto, the API as production serves it (``gunicorn -c gunicorn.conf.py``:
gevent workers, one per core), and the first version's stand-in (bench/seed_flask.py, Flask under
``gunicorn -w 4`` as its Dockerfile ships it). Then:

1. submit: ``wrk -t2 -c16`` on POST /whisper, the seed stand-in vs the API with auth and rate limits on;
2. slow clients: 1,000 connections sending a header byte a second; /health latency and submit
   throughput beside them, against the same without them;
3. waiting clients: 1,000 submits in ``Prefer: wait=60`` on jobs no worker takes; submit throughput
   beside them against without, and the API's memory (summed RSS of its processes);
4. wake-up: a job ends (the worker's finishing step, run here) -> the client waiting on
   ``GET /jobs/{id}?wait=30`` is answered: p50 and p99.

    python -m bench.serving [--seconds 10] [--crowd 1000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

import redis
import requests

from bench.api_submit import AUTH_LUA, LUA, run_wrk
from chalicelib.jobs.models import JobStatus
from chalicelib.security.auth import KeyStore
from chalicelib.store.jobs import JobStore
from devtools import servers


def gunicorn(args: list[str], port: int, env: dict[str, str], log_dir: Path) -> servers.Server:
    with open(log_dir / f"gunicorn-{port}.log", "wb") as log:
        proc = subprocess.Popen([str(servers.BIN / "gunicorn"), *args], cwd=servers.ROOT,
                                env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    server = servers.Server("gunicorn", proc, port)
    servers.wait_http(f"http://127.0.0.1:{port}/health" if "wsgi:application" in args else
                      f"http://127.0.0.1:{port}/", proc=proc)
    time.sleep(0.5)
    return server


def rss_mb(pid: int) -> float:
    """Summed resident memory of a process and its children (gunicorn's master and workers)."""
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                   text=True).stdout.split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


class Crowd:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.crowd", *args], cwd=servers.ROOT,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"crowd did not start: {line!r}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def latencies(url: str, seconds: float) -> list[float]:
    out = []
    session = requests.Session()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        assert session.get(url, timeout=10).status_code == 200
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def wake_up(api: str, key: str, redis_url: str, samples: int) -> list[float]:
    """ms from the job's finishing step to the waiting client's answer."""
    store = JobStore.from_url(redis_url, result_ttl_s=3600)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    out = []

    def wait_for(job_id: str, answered: list[float]) -> None:
        http.get(f"{api}/jobs/{job_id}", params={"wait": "30"}, timeout=40)
        answered.append(time.perf_counter())

    for _ in range(samples):
        job_id = http.post(f"{api}/whisper", json={"audio_url": "https://media.example.com/a.mp3"}).json()["id"]
        answered: list[float] = []
        waiter = threading.Thread(target=wait_for, args=(job_id, answered))
        waiter.start()
        time.sleep(0.05)  # the client is waiting
        store.start(job_id, run_token="t", lease_s=30, worker_id="bench")
        ended = time.perf_counter()
        store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "done"})
        waiter.join(40)
        out.append((answered[0] - ended) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--crowd", type=int, default=1000)
    parser.add_argument("--submit-only", action="store_true", help="only the submit comparison (1.)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each comparison")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    rds = servers.start_redis(log_dir=log_dir)
    moto = servers.start_moto(log_dir=log_dir)
    redis_url = f"redis://127.0.0.1:{rds.port}/0"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key, _ = KeyStore(client).create(name="bench", rate_per_s=1e6, burst=1_000_000, max_queued=10_000_000)
    auth_script, seed_script = log_dir / "auth.lua", log_dir / "seed.lua"
    auth_script.write_text(AUTH_LUA % key)
    seed_script.write_text(LUA)
    env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING")
    api_port, seed_port = servers.free_port(), servers.free_port()
    api = gunicorn(["-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{api_port}", "wsgi:application"], api_port,
                   {**env, "ENV_FILE": "/nonexistent"}, log_dir)
    seed = gunicorn(["-b", f"127.0.0.1:{seed_port}", "-w", "4", "--log-level", "warning", "bench.seed_flask:app"],
                    seed_port, {**env}, log_dir)
    base = f"http://127.0.0.1:{api_port}"
    submit_url = f"{base}/whisper"
    try:
        run_wrk(submit_url, 2, auth_script)  # warm-up
        seed_url = f"http://127.0.0.1:{seed_port}/whisper"
        pairs = [(run_wrk(seed_url, args.seconds, seed_script), run_wrk(submit_url, args.seconds, auth_script))
                 for _ in range(args.rounds)]  # interleaved, so both see the same machine
        seed.stop()
        seed_rps, ours_rps = [median(p[0]["rps"] for p in pairs), median(p[1]["rps"] for p in pairs)]
        seed_p99, ours_p99 = [median(p[0]["p99_ms"] for p in pairs), median(p[1]["p99_ms"] for p in pairs)]
        print(f"\n1. submit, wrk -t2 -c16 {args.seconds}s x {args.rounds} rounds interleaved, POST /whisper, "
              f"{os.cpu_count()} cores (medians)")
        for name, rps, p99 in (("first version (Flask, gunicorn -w 4)", seed_rps, seed_p99),
                               ("this API (gevent, auth + rate limits)", ours_rps, ours_p99)):
            print(f"   {name:40} {rps:7.0f} req/s  p99 {p99:6.2f} ms")
        ratios = ", ".join(f"{o['rps'] / s['rps']:.2f}" for s, o in pairs)
        print(f"   ratio: throughput {ours_rps / seed_rps:.2f}x (rounds: {ratios}), p99 {ours_p99 / seed_p99:.2f}x")
        if args.submit_only:
            return 0

        def beside(crowd_args: list[str]) -> tuple[list[float], list[float], list[float], list[float]]:
            """(/health ms, submit req/s) without and with the crowd, rounds interleaved."""
            quiet_ms: list[float] = []
            loud_ms: list[float] = []
            quiet_rps: list[float] = []
            loud_rps: list[float] = []
            for _ in range(args.rounds):
                quiet_ms += latencies(f"{base}/health", 3)
                quiet_rps.append(run_wrk(submit_url, args.seconds, auth_script)["rps"])
                crowd = Crowd(*crowd_args)
                try:
                    time.sleep(2)
                    loud_ms += latencies(f"{base}/health", 3)
                    loud_rps.append(run_wrk(submit_url, args.seconds, auth_script)["rps"])
                finally:
                    crowd.stop()
            return quiet_ms, loud_ms, quiet_rps, loud_rps

        quiet_ms, loud_ms, quiet_rps, loud_rps = beside(["slow", base, str(args.crowd)])
        print(f"\n2. slow clients: {args.crowd} connections sending a header byte a second "
              f"({args.rounds} rounds interleaved)")
        print(f"   /health p50/p99 ms: without {pct(quiet_ms, 50):.1f}/{pct(quiet_ms, 99):.1f}, "
              f"with {pct(loud_ms, 50):.1f}/{pct(loud_ms, 99):.1f}")
        print(f"   submits: {median(quiet_rps):.0f} req/s without, {median(loud_rps):.0f} with: "
              f"{median(loud_rps) / median(quiet_rps):.2f}x")

        idle_rss = rss_mb(api.proc.pid)
        crowd = Crowd("wait", base, str(args.crowd), key, "60")
        try:
            time.sleep(2)
            waiting_rss = rss_mb(api.proc.pid)
        finally:
            crowd.stop()
        time.sleep(1)
        _, _, quiet_rps, loud_rps = beside(["wait", base, str(args.crowd), key, "60"])
        busy_rss = rss_mb(api.proc.pid)
        print(f"\n3. waiting clients: {args.crowd} submits in Prefer: wait=60 on jobs no worker takes "
              f"({args.rounds} rounds interleaved)")
        print(f"   submits: {median(quiet_rps):.0f} req/s without, {median(loud_rps):.0f} with: "
              f"{median(loud_rps) / median(quiet_rps):.2f}x")
        print(f"   API memory (all its processes): {idle_rss:.0f} MB idle, {waiting_rss:.0f} MB with the waiting "
              f"clients, {busy_rss:.0f} MB after the rounds")

        wake = wake_up(base, key, redis_url, 200)
        print(f"\n4. wake-up, job end -> waiting client answered, {len(wake)} jobs: "
              f"p50 {statistics.median(wake):.1f} ms, p99 {pct(wake, 99):.1f} ms, max {max(wake):.1f} ms")
    finally:
        api.stop()
        seed.stop()
        moto.stop()
        rds.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
