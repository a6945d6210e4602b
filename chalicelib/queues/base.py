"""The queue seam: a handful of verbs, at-least-once delivery.

A received id is *leased*: invisible to other workers until the lease runs out,
when it is delivered again (so a worker that dies loses nothing). The job store
makes the effect exactly-once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from chalicelib.jobs.models import Lease


class JobQueue(ABC):
    """A queue of job ids. Implementations raise :class:`QueueUnavailable` when unreachable."""

    backend: str = "?"

    def __init__(self, *, lease_s: float) -> None:
        self.lease_s = lease_s

    @abstractmethod
    def enqueue(self, job_id: str, delay_s: float = 0) -> None:
        """Add an id, visible after ``delay_s``."""

    @abstractmethod
    def receive(self, wait_s: float) -> Lease | None:
        """Wait up to ``wait_s`` for an id; lease it for ``lease_s``. None when nothing came."""

    @abstractmethod
    def ack(self, lease: Lease) -> bool:
        """Done with it: remove for good. False when the lease had already expired."""

    @abstractmethod
    def nack(self, lease: Lease, delay_s: float = 0) -> bool:
        """Give it back, visible again after ``delay_s``."""

    @abstractmethod
    def extend(self, lease: Lease, seconds: float) -> bool:
        """Keep it ``seconds`` more from now. False when the lease was lost."""

    @abstractmethod
    def depth(self) -> int:
        """Ids waiting (ready or delayed), not counting leased ones."""

    def colocated_keys(self, client: Any) -> tuple[str, str, int] | None:
        """Keys that let a script on ``client``'s Redis enqueue atomically, if this queue lives there.

        Only a Redis queue on the same server can; every other queue answers None.
        """
        return None
