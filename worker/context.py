"""What an engine may ask of the runner while it works on one job (:class:`JobContext`)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chalicelib.errors import Cancelled
from chalicelib.models import Job


class JobContext:
    """The job being run, its scratch directory, progress, time on the node, and the stop flag.

    The runner makes one per run and removes ``workdir`` afterwards; engines write their
    inputs and outputs there. The heartbeat publishes ``progress`` and sets the stop flag
    (cancelled, timed out, lost, or released at shutdown), which engines see through
    :meth:`check` and :meth:`sleep`.
    """

    def __init__(self, job: Job, *, max_time_s: float, workdir: Path) -> None:
        self.job = job
        self.workdir = workdir
        self.started = time.monotonic()
        self.deadline = self.started + max_time_s
        self.progress: float | None = None
        self.node_s = 0.0  # time spent in calls to the GPU node (the rest is orchestration)
        self._stop = threading.Event()
        self.stop_reason: str | None = None  # cancelled | timed_out | released | lost

    def report(self, progress: float) -> None:
        """Record progress in [0, 1]; the runner's heartbeat publishes it."""
        self.progress = max(0.0, min(1.0, progress))

    def stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when the job was cancelled, timed out or is being released."""
        if self._stop.is_set():
            raise Cancelled(self.stop_reason or "cancelled")

    @contextmanager
    def on_node(self) -> Iterator[None]:
        """Count the enclosed time as time spent on the GPU node."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.node_s += time.monotonic() - started

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def sleep(self, seconds: float) -> None:
        """Wait, waking early (and raising) when the job must stop."""
        if self._stop.wait(seconds):
            raise Cancelled(self.stop_reason or "cancelled")
