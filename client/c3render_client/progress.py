"""How a waiting job is shown: a rich progress bar on a terminal, plain lines elsewhere (on stderr)."""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def describe(job: dict[str, Any]) -> str:
    """``queued (3 ahead)``, ``running``, ``success`` ... as a person reads it."""
    status = str(job.get("status"))
    if status == "queued" and job.get("queue_position") is not None:
        ahead = int(job["queue_position"])
        return f"queued ({ahead} ahead)" if ahead else "queued (next)"
    if status == "running" and job.get("cancel_requested"):
        return "cancelling"
    return status


def _without_sigint(start: Callable[[], None]) -> None:
    """Call ``start`` (which starts rich's refresh thread) with SIGINT blocked, so that thread inherits
    the block: a Ctrl-C then always lands on the calling (main) thread and interrupts the blocking read
    it is in. Taken by another thread, the signal would wait for that read to end: a 25 s long poll."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        start()
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class ProgressDisplay:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.console = Console(file=self.stream, stderr=self.stream is sys.stderr)
        self.interactive = self.console.is_terminal
        self.last_line = ""
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        if self.interactive:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=self.console,
                                     transient=False)
            _without_sigint(self.progress.start)
            self.task = self.progress.add_task("submitted", total=1.0)

    def update(self, job: dict[str, Any], event: dict[str, Any] | None) -> None:
        state = describe(job)
        fraction = float(job.get("progress") or 0.0)
        label = f"{job.get('type', 'job')} {job.get('id', '')} {state}"
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=label, completed=min(1.0, fraction))
            return
        line = f"{label} {fraction:.0%}" if job.get("status") == "running" else label
        if event is not None and event.get("type") not in (None, "progress"):
            line += f" ({event.get('message') or event.get('type')})"
        if line != self.last_line:  # plain lines, on change only
            self.last_line = line
            print(f"[{time.monotonic() - self.started:6.1f}s] {line}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
