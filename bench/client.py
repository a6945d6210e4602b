"""The client's own cost: ``Client.run("analyze", ...)`` end to end minus the job's own time, and the CLI's start-up.

Starts Redis, moto, the devnode, the API and a worker (the real engines on the devnode), then runs analyze
jobs through the SDK: the overhead is the SDK's wall time minus the job's submit->finish time as the API
recorded it (created_at -> finished_at). Target: <= 50 ms. Beside it, how long ``c3render`` takes to start
(``--help``) and to answer one ``status``.

    python -m bench.client [--jobs 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import redis
from c3render_client import Client

from chalicelib.security.auth import KeyStore
from devtools import servers
from tests.media_fixtures import FileServer, red_square

KEY = "bench-client-key"


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-client-"))
    work = Path(tempfile.mkdtemp(prefix="bench-client-files-"))
    red_square(work / "red.png")
    files = FileServer(work)
    rds, moto = servers.start_redis(log_dir=log_dir), servers.start_moto(log_dir=log_dir)
    devnode = servers.start_devnode(api_key=KEY, log_dir=log_dir)
    started: list[servers.Server] = []
    try:
        redis_url = f"redis://127.0.0.1:{rds.port}/0"
        key, _ = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(
            name="bench", rate_per_s=1e6, burst=1_000_000, max_queued=10_000_000)
        env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING", WORKER_LEASE_S="20",
                                **servers.devnode_env(devnode, KEY))
        api = servers.start_api(env, log_dir=log_dir)
        started += [api, servers.start_worker(env, log_dir=log_dir)]
        client = Client(api.url, key)
        image = files.url("red.png")
        for _ in range(3):  # warm: the worker's engine, the API's processes
            client.run("analyze", image_url=image)
        overheads, totals = [], []
        for _ in range(args.jobs):
            clock = time.perf_counter()
            job = client.run("analyze", image_url=image, prompt="What colour?")
            total = time.perf_counter() - clock
            own = seconds(job["finished_at"]) - seconds(job["created_at"])
            totals.append(total * 1000)
            overheads.append((total - own) * 1000)
        env_cli = {**os.environ, "C3RENDER_URL": api.url, "C3RENDER_API_KEY": key}
        startup, status = [], []
        for _ in range(7):
            clock = time.perf_counter()
            subprocess.run([sys.executable, "-m", "c3render_client.cli", "--help"], capture_output=True, env=env_cli,
                           check=True)
            startup.append((time.perf_counter() - clock) * 1000)
            clock = time.perf_counter()
            subprocess.run([sys.executable, "-m", "c3render_client.cli", "status", job["id"]], capture_output=True,
                           env=env_cli, check=True)
            status.append((time.perf_counter() - clock) * 1000)
    finally:
        for server in [*started, devnode, moto, rds]:
            server.stop()
        files.close()
    overheads.sort()
    print(f"\nClient.run('analyze') x {args.jobs} against the devnode: "
          f"end to end p50 {statistics.median(totals):.1f} ms; "
          f"minus the job's own submit->finish: p50 {statistics.median(overheads):.1f} ms, "
          f"p95 {overheads[int(0.95 * (len(overheads) - 1))]:.1f} ms, max {overheads[-1]:.1f} ms (target <= 50 ms)")
    print(f"c3render start-up (--help): median {statistics.median(startup):.0f} ms; "
          f"`c3render status ID` (start-up + one API call): median {statistics.median(status):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
