"""``python -m worker``: serve jobs (and deliver webhooks) until SIGTERM/SIGINT.

The first signal stops taking new jobs; the job in hand finishes, or after
``WORKER_SHUTDOWN_GRACE_S`` is released back to the queue; the process exits 0.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from chalicelib.logs import setup_logging
from chalicelib.settings import Settings
from worker.wiring import build_notifier, build_runners

log = logging.getLogger("worker")


def main() -> int:
    settings = Settings.from_env()
    setup_logging(fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets())
    log.info("starting with %r", settings)
    shutdown = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current job, then exiting", signal.Signals(signum).name)
        shutdown.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = []
    if settings.webhook_notifier:
        notifier = build_notifier(settings)
        threads.append(threading.Thread(target=notifier.run_forever, args=(shutdown,), name="notifier"))
    runners = build_runners(settings, shutdown)
    threads += [threading.Thread(target=r.run_forever, name=r.worker_id) for r in runners[1:]]
    for thread in threads:
        thread.start()
    runners[0].run_forever()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
