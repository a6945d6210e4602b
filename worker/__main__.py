"""``python -m worker``: serve jobs until SIGTERM/SIGINT.

The first signal stops taking new jobs; the job in hand finishes, or after
``WORKER_SHUTDOWN_GRACE_S`` is released back to the queue; the process exits 0.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import uuid
from types import FrameType

from chalicelib.logs import setup_logging
from chalicelib.queues import make_queue
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStorage
from chalicelib.store import JobStore
from worker.engines import build_engines
from worker.runner import Runner, RunnerConfig

log = logging.getLogger("worker")


def main() -> int:
    settings = Settings.from_env()
    setup_logging(fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets())
    shutdown = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current job, then exiting", signal.Signals(signum).name)
        shutdown.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = RunnerConfig(lease_s=settings.lease_s, heartbeat_s=min(settings.lease_s / 3, 2.0),
                          shutdown_grace_s=settings.worker_shutdown_grace_s)
    engines = build_engines(settings)
    prefix = f"w-{uuid.uuid4().hex[:6]}"
    runners = []
    for slot in range(max(1, settings.worker_concurrency)):
        store = JobStore.from_url(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 2.0),
                                  result_ttl_s=settings.result_ttl_s)
        runners.append(Runner(store=store, queue=make_queue(settings, create=settings.create_missing), engines=engines,
                              storage_factory=lambda: ObjectStorage.from_settings(settings), config=config,
                              worker_id=f"{prefix}-{slot}", shutdown=shutdown))
    threads = [threading.Thread(target=r.run_forever, name=r.worker_id) for r in runners[1:]]
    for thread in threads:
        thread.start()
    runners[0].run_forever()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
