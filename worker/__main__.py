"""``python -m worker``: serve jobs (and deliver webhooks) until SIGTERM/SIGINT.

The first signal stops taking new jobs; the job in hand finishes, or after
``WORKER_SHUTDOWN_GRACE_S`` is released back to the queue; the process exits 0.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from functools import partial
from types import FrameType

# The worker is one process and serves its own registry. PROMETHEUS_MULTIPROC_DIR is the
# API's (gunicorn's) setting; inherited here, prometheus_client would write into a
# directory that may not exist. It is read when prometheus_client is imported, so before that.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from chalicelib.errors import ConfigError  # noqa: E402
from chalicelib.ops.logs import setup_logging  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from worker.probes import ProbeServer  # noqa: E402
from worker.runner import Runner  # noqa: E402
from worker.wiring import build_metrics, build_notifier, build_runners, build_sweeper  # noqa: E402

log = logging.getLogger("worker")


def main() -> int:
    try:
        return _run()
    except ConfigError as err:  # a setting the operator got wrong: say which, without a traceback
        print(f"worker: configuration error: {err}", file=sys.stderr)
        return 2


def _run() -> int:
    settings = Settings.from_env()  # ConfigError here, or while the runners are built
    setup_logging(fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets())
    log.info("starting with %r", settings)
    shutdown = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current job, then exiting", signal.Signals(signum).name)
        shutdown.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = build_metrics(settings)
    threads = []
    if settings.webhook_notifier:
        notifier = build_notifier(settings, metrics)
        threads.append(threading.Thread(target=notifier.run_forever, args=(shutdown,), name="notifier"))
    threads.append(threading.Thread(target=build_sweeper(settings).run_forever, args=(shutdown,), name="sweeper"))
    runners = build_runners(settings, shutdown, metrics)
    probes = None
    if settings.metrics_port:
        probes = ProbeServer(port=settings.metrics_port, metrics=metrics, alive=partial(_alive, runners),
                             ready=partial(_ready, runners, shutdown))
        probes.start()
    threads += [threading.Thread(target=r.run_forever, name=r.worker_id) for r in runners[1:]]
    for thread in threads:
        thread.start()
    runners[0].run_forever()
    for thread in threads:
        thread.join()
    if probes is not None:
        probes.close()
    log.info("stopped")
    return 0


def _alive(runners: list[Runner]) -> str | None:
    """A heartbeat thread that stopped ticking means a wedged process: restart it."""
    for runner in runners:
        stalled = time.monotonic() - runner.heartbeat.last_tick
        if stalled > 30:
            return f"{runner.worker_id}: no heartbeat tick for {stalled:.0f} s"
    return None


def _ready(runners: list[Runner], shutdown: threading.Event) -> str | None:
    if shutdown.is_set():
        return "shutting down"
    runners[0].store.ping()  # raises StoreUnavailable: not ready
    return None


if __name__ == "__main__":
    sys.exit(main())
