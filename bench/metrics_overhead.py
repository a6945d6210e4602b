"""What counting costs a request: the metric updates one submit makes, timed in-process.

The API under gunicorn counts into memory-mapped files (PROMETHEUS_MULTIPROC_DIR), so
this runs in that mode too. Timed in-process because a whole-server A/B on these 2 noisy
cores would hide a difference this small; request validation is timed alongside for scale.

    python -m bench.metrics_overhead
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable


def per_call_us(call: Callable[[], object], n: int = 20000) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            call()
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


def main() -> int:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")
    from chalicelib.jobs import spec as jobspec
    from chalicelib.ops.metrics import Metrics  # after the variable: prometheus_client reads it on import

    metrics = Metrics(multiproc_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])

    def submit_counts() -> None:
        metrics.jobs_submitted.labels("whisper").inc()
        metrics.http_requests.labels("/whisper", "POST", "202").inc()
        metrics.http_seconds.labels("/whisper").observe(0.004)

    body = {"audio_url": "https://media.example.com/talk.mp3", "model": "small"}
    counting = per_call_us(submit_counts)
    whisper = jobspec.builtin().get("whisper")
    validating = per_call_us(lambda: whisper.parse(body))
    render_started = time.perf_counter()
    for _ in range(20):
        metrics.render()
    render_ms = (time.perf_counter() - render_started) / 20 * 1000
    print(f"metric updates per submit: {counting:.1f} us (multiprocess mode)")
    print(f"request validation alone, for scale: {validating:.1f} us")
    print(f"/metrics render (this process's files): {render_ms:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
