"""Submit throughput and latency of POST /whisper under gunicorn, 16 concurrent clients.

Starts its own Redis and moto server, then for each server configuration runs
wrk (C, one process, so the load generator costs little CPU) for a fixed time
and prints requests/s and p50/p99 latency. The seed-style Flask app is run in
the same session as a baseline, so figures are compared as ratios.

    python -m bench.api_submit [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from chalicelib.security.auth import KeyStore
from devtools import servers

LUA = """
wrk.method = "POST"
wrk.body   = '{"audio_url": "https://media.example.com/talk.mp3", "model": "small"}'
wrk.headers["Content-Type"] = "application/json"
"""
AUTH_LUA = LUA + 'wrk.headers["Authorization"] = "Bearer %s"\n'


def parse_wrk(text: str) -> dict[str, float]:
    def to_ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "socket_errors": 1.0 if errors and re.search(r"[1-9]", errors.group(0)) else 0.0}


def run_wrk(url: str, seconds: int, script: Path) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def gunicorn(app: str, port: int, env: dict[str, str], extra: list[str], log_dir: Path) -> servers.Server:
    args = [str(servers.BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "--log-level", "warning", *extra, app]
    with open(log_dir / f"gunicorn-{port}.log", "wb") as log:
        proc = subprocess.Popen(args, cwd=servers.ROOT, env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT)
    server = servers.Server("gunicorn", proc, port)
    servers.wait_port(port, proc=proc)
    time.sleep(0.5)
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    rds = servers.start_redis(log_dir=log_dir)
    moto = servers.start_moto(log_dir=log_dir)
    redis_url = f"redis://127.0.0.1:{rds.port}/0"
    env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING")
    no_auth = {"AUTH_REQUIRED": "false"}
    configs = [
        ("seed-style Flask, sync x2", "bench.seed_flask:app", ["-w", "2"], no_auth),
        ("C3 API, sync x2, no auth", "wsgi:application", ["-w", "2"], no_auth),
        ("C3 API, sync x4, no auth", "wsgi:application", ["-w", "4"], no_auth),
        ("C3 API, sync x4, auth+rate", "wsgi:application", ["-w", "4"], {}),
        ("C3 API, gthread 2x4, no auth", "wsgi:application", ["-w", "2", "--threads", "4"], no_auth),
    ]
    results = {}
    try:
        for name, app, extra, overrides in configs:
            redis.Redis.from_url(redis_url).flushdb()
            key, _ = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(
                name="bench", rate_per_s=1e6, burst=1_000_000, max_queued=10_000_000)  # limits on, never hit
            script = log_dir / "post.lua"
            script.write_text(LUA if overrides else AUTH_LUA % key)
            port = servers.free_port()
            server = gunicorn(app, port, {**env, **overrides}, extra, log_dir)
            try:
                run_wrk(f"http://127.0.0.1:{port}/whisper", 2, script)  # warm-up
                results[name] = run_wrk(f"http://127.0.0.1:{port}/whisper", args.seconds, script)
            finally:
                server.stop()
    finally:
        moto.stop()
        rds.stop()
    base = results[configs[0][0]]["rps"]
    print(f"\nPOST /whisper, 16 connections, {args.seconds}s each, {os.cpu_count()} cores, wrk on the same machine")
    print(f"{'server':30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs seed':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(f"{name:30} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rps'] / base:8.2f} "
              f"{int(r['non2xx']):8d}")
    auth, plain = results["C3 API, sync x4, auth+rate"]["rps"], results["C3 API, sync x4, no auth"]["rps"]
    print(f"auth + rate limiting on / off (sync x4): {auth / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
