"""The sweeper: deletes from the bucket what has outlived its time, in every deployment.

Results (``results/<job id>/``) go when their job's record does (``RESULT_TTL_S`` after it
ended); uploads when they expire (``UPLOAD_TTL_S``, or the deadline of a job that uses one).
Where the store applies lifecycle rules (S3) a rule does the same; moto never applies them and
MinIO only when configured, so without this a local run would grow without end. One worker
sweeps at a time (a Redis lock), every ``SWEEP_EVERY_S``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from chalicelib.errors import RenderError
from chalicelib.files.storage import ObjectStorage, result_prefix
from chalicelib.files.uploads import UploadStore
from chalicelib.store.jobs import JobStore

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, *, store: JobStore, uploads: UploadStore, storage: Callable[[], ObjectStorage],
                 every_s: float) -> None:
        self.store = store
        self.uploads = uploads
        self._storage = storage
        self.every_s = every_s

    def sweep(self, now: float | None = None) -> tuple[int, int]:
        """Delete what is due; returns (jobs whose results went, uploads that went). Runs only where
        it takes the lock (another worker may be sweeping)."""
        now = now or time.time()
        if not self.store.lock("sweeper", ttl_s=max(30.0, self.every_s)):
            return 0, 0
        try:
            storage = self._storage()
            jobs = self.store.results_due(now)
            for job_id in jobs:
                storage.delete_prefix(result_prefix(job_id))
            self.store.results_swept(jobs)
            expired = self.uploads.expired(now)
            for key in expired:
                storage.delete(key)
            self.uploads.forget(expired)
        finally:
            self.store.unlock("sweeper")
        if jobs or expired:
            log.info("swept the results of %d jobs and %d uploads", len(jobs), len(expired))
        return len(jobs), len(expired)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.every_s):
            try:
                self.sweep()
            except RenderError as err:
                log.warning("sweeper: %s", err)
            except Exception:  # keep sweeping: an unexpected error must not end housekeeping
                log.exception("sweeper failed")
