"""Webhook delivery rate, and job throughput with a black-hole receiver vs none.

1. N completed jobs with a notify_url pointing at a fast local receiver (its own
   process, asyncio, answers 204 at once); ``python -m worker.notifier`` delivers
   them; deliveries/s = N / time until the last is delivered.
2. One worker process (echo engine, notifier inside): the time to finish M jobs
   with no webhooks, with a healthy receiver, and with a black hole (accepts the
   connection, never answers), interleaved over several rounds; medians and ratios.

    python -m bench.webhooks [--deliveries 3000] [--jobs 1500]
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chalicelib.jobs.models import JobStatus
from chalicelib.queues.redis_queue import RedisQueue
from chalicelib.store.jobs import JobStore
from devtools import servers


def serve_fast(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def finished_job(store: JobStore, url: str | None) -> str:
    job_id = str(uuid.uuid4())
    params = {"audio_url": "https://media.example.com/a.mp3", "complete_in": 3600, "max_time": 1200}
    if url:
        params["notify_url"] = url
    store.create(job_id=job_id, job_type="whisper", owner="bench", max_attempts=3, params=params)
    store.start(job_id, run_token="t", lease_s=60, worker_id="bench")
    store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "hello"})
    return job_id


def job_rate(store: JobStore, queue: RedisQueue, count: int, url: str | None) -> float:
    ids = []
    for _ in range(count):
        job_id = str(uuid.uuid4())
        params = {"audio_url": "https://media.example.com/a.mp3", "complete_in": 3600, "max_time": 1200}
        if url:
            params["notify_url"] = url
        store.create(job_id=job_id, job_type="whisper", owner="bench", max_attempts=3, params=params,
                     enqueue_keys=queue.colocated_keys(store.redis))
        ids.append(job_id)
    started = time.monotonic()
    while not all(j and j.status.terminal for j in store.get_many(ids[-50:])) or store.redis.llen("queue:jobs"):
        time.sleep(0.01)
    return count / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    rds = servers.start_redis(log_dir=log_dir)
    moto = servers.start_moto(log_dir=log_dir)
    redis_url = f"redis://127.0.0.1:{rds.port}/0"
    env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING", ALLOW_PRIVATE_URLS="true",
                            WEBHOOK_SECRET="whsec_" + "A" * 32)
    store = JobStore.from_url(redis_url, result_ttl_s=3600)
    queue = RedisQueue.from_url(redis_url, name="jobs", lease_s=60)
    fast_port = servers.free_port()
    fast = subprocess.Popen([sys.executable, "-c", f"from bench.webhooks import serve_fast; serve_fast({fast_port})"],
                            cwd=servers.ROOT)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4096)  # accepts into the backlog, never reads, never answers
    hole_url = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"
    try:
        servers.wait_port(fast_port)
        ids = [finished_job(store, f"http://127.0.0.1:{fast_port}/hook") for _ in range(args.deliveries)]
        notifier = servers._spawn("notifier", [sys.executable, "-m", "worker.notifier"], 0, env={**env},
                                  log_dir=log_dir)
        started = time.monotonic()
        while store.redis.zcard("webhooks:due"):
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        notifier.stop()
        delivered = sum(1 for j in store.get_many(ids) if j and j.webhook == "delivered")
        worker = servers.start_worker(env, log_dir=log_dir)
        job_rate(store, queue, 100, None)  # warm-up
        rates: dict[str, list[float]] = {"none": [], "healthy": [], "blackhole": []}
        urls = {"none": None, "healthy": f"http://127.0.0.1:{fast_port}/hook", "blackhole": hole_url}
        for _ in range(args.rounds):  # interleaved, so drift on a noisy machine hits all alike
            for name, url in urls.items():
                rates[name].append(job_rate(store, queue, args.jobs, url))
        worker.stop()
    finally:
        fast.terminate()
        hole.close()
        moto.stop()
        rds.stop()
    print(f"\nwebhook deliveries to a local receiver: {delivered}/{args.deliveries} in {elapsed:.2f} s "
          f"= {delivered / elapsed:.0f}/s (notifier: 16 concurrent, signed)")
    med = {name: statistics.median(values) for name, values in rates.items()}
    print(f"job rate, one worker, median of {args.rounds} interleaved rounds of {args.jobs} jobs:")
    for name, value in med.items():
        print(f"  {name:10} {value:6.0f} jobs/s   ratio to none {value / med['none']:.2f}   "
              f"(rounds: {', '.join(f'{v:.0f}' for v in rates[name])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
