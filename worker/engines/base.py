"""The engine seam: one engine per job type, ``run(job, node, ctx) -> Result``.

Engines only do the work. The runner owns leases, cancellation, time limits
and recording; an engine reports progress and checks ``ctx.check()`` at safe
points, and raises :class:`InputError` (the caller's fault) or
:class:`NodeError` (the node's fault, retried) from ``chalicelib.errors``.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import Cancelled
from chalicelib.models import Job
from chalicelib.storage import ObjectStorage


@dataclass
class Result:
    """What an engine produced: ``text`` and/or a stored file ``key``, plus extras."""

    text: str | None = None
    key: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    gpu_seconds: float | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = dict(self.extra)
        if self.text is not None:
            record["text"] = self.text
        if self.key is not None:
            record["key"] = self.key
        if self.files:
            record["files"] = dict(self.files)
        return record


class JobContext:
    """What an engine may ask of the runner while it works on one job."""

    def __init__(self, job: Job, *, storage: ObjectStorage | None, max_time_s: float) -> None:
        self.job = job
        self.storage = storage
        self.started = time.monotonic()
        self.deadline = self.started + max_time_s
        self.progress: float | None = None
        self.node_s = 0.0  # time spent in calls to the GPU node (the rest is orchestration)
        self._stop = threading.Event()
        self.stop_reason: str | None = None  # cancelled | timed_out | released

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


class Engine(ABC):
    """Renders one job type on a node."""

    job_type: str
    needs_node: bool = True  # the runner acquires a GPU node before calling run()

    @abstractmethod
    def run(self, job: Job, node: Any, ctx: JobContext) -> Result:
        """Do the work; returns the result, raises EngineError subclasses or Cancelled."""
