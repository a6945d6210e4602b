"""What an engine may ask of the runner while it works on one job (:class:`JobContext`)."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib.errors import Cancelled
from chalicelib.jobs.models import Job
from worker.inputs import Input

Emit = Callable[..., None]


def _ignore(kind: str, message: str, **fields: Any) -> None:
    return None


class JobContext:
    """The job being run, its inputs and scratch directory, progress, time on the node, and the stop flag.

    The runner makes one per run and removes ``workdir`` afterwards (made on first use);
    engines find their fetched inputs in ``inputs`` and write their outputs to ``workdir``.
    ``emit(kind, message, **fields)`` adds an event to the job's timeline. The heartbeat
    publishes ``progress`` and sets the stop flag (cancelled, timed out, lost, or released at
    shutdown), which engines see through :meth:`check` and :meth:`sleep`.

    Progress: the runner sets the job's progress at each stage (inputs fetched, node acquired,
    outputs stored) and gives the engine a span of it; what an engine reports with
    :meth:`report` (0..1 of its own work) is placed in that span.
    """

    def __init__(self, job: Job, *, max_time_s: float, emit: Emit = _ignore) -> None:
        self.job = job
        self.emit = emit
        self.inputs: dict[str, Input] = {}
        self._workdir: Path | None = None
        self._span = (0.0, 1.0)
        self.started = time.monotonic()
        self.deadline = self.started + max_time_s
        self.progress: float | None = None
        self.node_s = 0.0  # time spent in calls to the GPU node (the rest is orchestration)
        self._stop = threading.Event()
        self.stop_reason: str | None = None  # cancelled | timed_out | released | lost

    @property
    def workdir(self) -> Path:
        """This run's scratch directory."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="c3render-job-"))
        return self._workdir

    def cleanup(self) -> None:
        """Remove the scratch directory, if one was made."""
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def report(self, progress: float) -> None:
        """The engine's progress through its own work, in [0, 1]; the heartbeat publishes it."""
        low, high = self._span
        self.progress = low + (high - low) * max(0.0, min(1.0, progress))

    def stage(self, progress: float, *, engine_until: float | None = None) -> None:
        """(The runner.) The job's progress now; an engine working from here reports up to ``engine_until``."""
        self.progress = progress
        if engine_until is not None:
            self._span = (progress, engine_until)

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
