"""``python -m worker.notifier``: the webhook notifier alone, until SIGTERM/SIGINT."""
from __future__ import annotations

import signal
import threading

from chalicelib.ops.logs import setup_logging
from chalicelib.settings import Settings
from worker.wiring import build_notifier


def main() -> int:
    settings = Settings.from_env()
    setup_logging(fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    build_notifier(settings).run_forever(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
