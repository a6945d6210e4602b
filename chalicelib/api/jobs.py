"""The jobs part of the API: submit, read, wait, cancel, retry, delete, list, and a job's webhooks."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from chalicelib.api.callers import Principal
from chalicelib.api.compat import V1, as_v1, mark_request, v1_body, v1_status, valid_id
from chalicelib.api.files import Files
from chalicelib.errors import BadRequest, Conflict, FieldProblem, NotFound, NotReady, RenderError, ValidationError
from chalicelib.files.storage import ObjectStorage, result_prefix
from chalicelib.jobs.models import Job, JobStatus, RateState, iso
from chalicelib.jobs.schemas import parse_date_time
from chalicelib.jobs.spec import Catalog, JobSpec
from chalicelib.ops.metrics import Metrics
from chalicelib.queues.base import JobQueue
from chalicelib.security.urlpolicy import redact_url
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Outbox
from chalicelib.store.waiters import JobWatcher

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"  # printable ASCII, 1-255 characters, no edge spaces
LIST_LIMIT_MAX = 100


def _timestamp(name: str, value: str | None, problems: list[FieldProblem]) -> float | None:
    """An RFC 3339 date-time (``2026-11-28T10:00:00Z``, a zone required) as unix seconds."""
    if value is None:
        return None
    seconds = parse_date_time(value)
    if seconds is None:
        problems.append(FieldProblem(name, "must be an RFC 3339 date-time with a time zone, such as "
                                     "2026-11-28T10:00:00Z"))
    return seconds


def job_defaults(settings: Settings) -> dict[str, int]:
    """The defaults of the common job fields that are settings (the first version's names)."""
    return {"complete_in": settings.default_complete_in, "max_time": settings.default_max_time}


def links(job_id: str) -> dict[str, str]:
    return {"status": f"/status/{job_id}", "result": f"/result/{job_id}", "cancel": f"/jobs/{job_id}/cancel"}

class Jobs:
    """Jobs over the job store, the queue, the webhook outbox and (lazily) object storage."""

    def __init__(self, *, settings: Settings, catalog: Catalog, store: JobStore, queue: JobQueue, outbox: Outbox,
                 files: Files, storage: Callable[[], ObjectStorage], watcher: JobWatcher, metrics: Metrics) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.queue = queue
        self.outbox = outbox
        self.files = files
        self._storage = storage
        self.watcher = watcher
        self.metrics = metrics
        # When the queue lives in the store's Redis, a submit records and enqueues in one step.
        self._colocated = queue.colocated_keys(store.redis)
        self._defaults = job_defaults(settings)

    @property
    def storage(self) -> ObjectStorage:
        return self._storage()

    def submit(self, job_type: str, body: Any, *, principal: Principal,
               idempotency_key: str | None = None) -> tuple[dict[str, Any], bool, RateState | None]:
        """Validate, admit, record and enqueue a job. Returns ``(job view, created, rate state)``.

        ``created`` is False when an Idempotency-Key replays an earlier submit.
        Raises ValidationError, RateLimited, QueueFull, Conflict (key reused with
        another body) or Unavailable.
        """
        _check_idempotency_key(idempotency_key)
        spec = self.catalog.get(job_type)
        if principal.compat == V1:
            body = v1_body(spec, body)
        params = spec.parse(body, self._defaults)
        metadata = params.pop("metadata", None)
        fingerprint = _fingerprint([job_type, params, metadata]) if idempotency_key is not None else ""
        # before inline data is stored again (create.lua decides atomically anyway)
        replayed = self._replayed(principal, idempotency_key, fingerprint)
        if replayed is not None:
            return replayed, False, None
        return self._create(spec, params, principal=principal, metadata=metadata, idempotency_key=idempotency_key,
                            fingerprint=fingerprint)

    def _replayed(self, principal: Principal, idempotency_key: str | None,
                  fingerprint: str) -> dict[str, Any] | None:
        """The job an Idempotency-Key already made for this same request (its view), or None.
        Raises :class:`Conflict` when the key was used for another request."""
        if idempotency_key is None:
            return None
        prior = self.store.idempotent_job(principal.owner, idempotency_key)
        if prior is None:
            return None
        if prior[1] != fingerprint:
            raise Conflict("Idempotency-Key was already used with a different request")
        return self.status(prior[0], principal=principal)

    def _create(self, spec: JobSpec, params: dict[str, Any], *, principal: Principal,
                metadata: dict[str, Any] | None, idempotency_key: str | None = None, fingerprint: str = "",
                retry_of: str | None = None) -> tuple[dict[str, Any], bool, RateState | None]:
        job_type = spec.name
        inputs = self.files.resolve_inputs(spec, params, owner=principal.owner,
                                           until=time.time() + params["complete_in"])
        job_id = str(uuid.uuid4())
        colocated = self._colocated
        outcome = self.store.create(
            job_id=job_id, job_type=job_type, owner=principal.owner, params=params,
            max_attempts=self.settings.max_attempts, idempotency_key=idempotency_key, fingerprint=fingerprint,
            admission=principal.admission, enqueue_keys=colocated, metadata=metadata, inputs=inputs,
            retry_of=retry_of)
        if not outcome.created:
            return self.status(outcome.job_id, principal=principal), False, outcome.rate
        if colocated is None:
            try:
                self.queue.enqueue(job_id)
            except RenderError:
                # Not accepted: take the record back so nothing half-made remains.
                self.store.discard(job_id, principal.owner, idempotency_key)
                raise
        self.metrics.jobs_submitted.labels(job_type).inc()
        log.debug("job submitted", extra={"job_id": job_id, "job_type": job_type})
        view = {"id": job_id, "type": job_type, "status": JobStatus.QUEUED.value,
                "created_at": iso(outcome.created_at), "links": links(job_id)}
        if metadata is not None:
            view["metadata"] = metadata
        if retry_of:
            view["retry_of"] = retry_of
        return view, True, outcome.rate

    # -- read -----------------------------------------------------------------

    def _owned(self, job_id: str, principal: Principal) -> Job:
        if principal.compat == V1 and not valid_id(job_id):
            raise BadRequest("Invalid job ID format")
        job = self.store.get(job_id)
        if job.owner != principal.owner and not principal.admin:
            raise NotFound(f"job {job_id} not found")  # another tenant's job does not exist for you
        return job

    def _wait_terminal(self, job: Job, wait_s: float) -> Job:
        """The job once it has ended, or as it is after ``wait_s`` (woken by its changes, not polled)."""
        if wait_s <= 0 or job.status.terminal:
            return job

        def ended() -> Job | None:
            current = self.store.get(job.id)
            return current if current.status.terminal else None
        return self.watcher.wait(job.id, wait_s, ended) or self.store.get(job.id)

    def status(self, job_id: str, *, principal: Principal, wait_s: float = 0) -> dict[str, Any]:
        """The job's view; with ``wait_s``, answered as soon as the job ends, or after that long."""
        job = self._wait_terminal(self._owned(job_id, principal), wait_s)
        return self._seen_by(principal, job, self.status_view(job))

    @staticmethod
    def _seen_by(principal: Principal, job: Job, view: dict[str, Any]) -> dict[str, Any]:
        """A view as the caller's compatibility mode shows it (chalicelib/api/compat.py)."""
        return as_v1(view, job) if principal.compat == V1 else view

    def wait_for_result(self, job_id: str, *, principal: Principal, wait_s: float) -> tuple[dict[str, Any], bool]:
        """``Prefer: wait``: ``(view, ended)``; an ended job's view carries its result fields too."""
        job = self._wait_terminal(self._owned(job_id, principal), wait_s)
        if not job.status.terminal:
            return self._seen_by(principal, job, self.status_view(job)), False
        return self._seen_by(principal, job, {**self.status_view(job), **self.result_view(job)}), True

    def status_view(self, job: Job, *, with_position: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": job.id, "type": job.type, "status": job.status.value,
            "created_at": iso(job.created_at), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at), "attempt": job.attempt, "max_attempts": job.max_attempts,
            "progress": 1.0 if job.status is JobStatus.SUCCESS else (job.progress or 0.0),
        }
        if job.status is JobStatus.QUEUED and with_position:
            view["queue_position"] = self.store.queue_position(job)
        if job.error:
            view["error"] = job.error
        if job.cancel_requested and not job.status.terminal:
            view["cancel_requested"] = True
        elif job.cancel_requested and job.status is not JobStatus.CANCELLED:
            view["cancel_outcome"] = "too_late"  # the job ended on its own before the worker stopped it
        if job.webhook:
            view["webhook"] = job.webhook
        view["gpu_seconds"] = job.gpu_seconds or 0.0  # 0: never held a GPU node (it failed before, say)
        view["cost"] = job.cost  # at GPU_PRICE_PER_HOUR when it ended; None: no price set, or not ended
        view["node"] = job.node
        view["input"] = self.input_view(job)
        if job.metadata is not None:
            view["metadata"] = job.metadata
        if job.retry_of:
            view["retry_of"] = job.retry_of
        view["links"] = links(job.id)
        return view

    def input_view(self, job: Job) -> dict[str, Any]:
        """The job's parameters as the worker uses them: aliases folded, defaults applied, inline data as
        the upload it became, and no URL's ``user:password@``."""
        spec = self.catalog.get(job.type) if job.type in self.catalog else None
        urls = {f.name for f in spec.url_fields} if spec else set()
        return {name: redact_url(value) if name in urls and isinstance(value, str) else value
                for name, value in job.params.items()}

    def result(self, job_id: str, *, principal: Principal) -> dict[str, Any]:
        """The outcome of a finished job. Raises :class:`NotReady` (409) while it runs."""
        job = self._owned(job_id, principal)
        if not job.status.terminal:
            raise NotReady(f"job {job_id} has no result yet: it is {job.status.value}", status=job.status.value)
        return self._seen_by(principal, job, {"id": job.id, "type": job.type, "status": job.status.value,
                                              **self.result_view(job)})

    def result_view(self, job: Job) -> dict[str, Any]:
        """An ended job's result fields: ``result_url`` (signed now) or ``text``, files, extras; or ``error``."""
        if job.status is not JobStatus.SUCCESS:
            return {"error": job.error or job.status.value}
        result = dict(job.result or {})
        view: dict[str, Any] = {}
        key = result.pop("key", None)
        if key:
            view["result_url"] = self.storage.presign(key)
            lasting = self.files.links.link(key)
            if lasting:
                view["result_link"] = lasting
        files = result.pop("files", None)
        if files:
            view["files"] = {name: self.storage.presign(k) for name, k in files.items()}
        view.update(result)
        return view

    def events(self, job_id: str, *, principal: Principal, after: int = 0, wait_s: float = 0) -> dict[str, Any]:
        """The job's timeline after event ``after``; with ``wait_s``, answered as soon as there is a
        new event (or the job has ended and none will come), or after that long with none."""
        job = self._owned(job_id, principal)

        def fresh() -> list[dict[str, Any]] | None:
            found = self.store.events(job, after=after)
            if found or wait_s <= 0 or self.store.get(job_id).status.terminal:
                return found
            return None
        found = (fresh() if wait_s <= 0 else self.watcher.wait(job.id, wait_s, fresh)) or []
        return {"events": [{**event, "at": iso(event["at"])} for event in found],
                "next": str(found[-1]["seq"] if found else after)}

    def cancel(self, job_id: str, *, principal: Principal) -> dict[str, Any]:
        self._owned(job_id, principal)
        outcome = self.store.cancel(job_id)
        view = self.status(job_id, principal=principal)
        view["cancel"] = outcome if outcome in ("cancelled", "cancelling") else "already_finished"
        return view

    def mark(self, job_id: str, body: Any, *, principal: Principal) -> dict[str, Any]:
        """The first version's ``POST /job/{id}``: any job of the caller takes the status given (failed,
        cancelled, timed_out) and reads so from then on; ``remove_data`` then deletes it and all it left."""
        job = self._owned(job_id, principal)
        status, error, remove = mark_request(body)
        previous = self.store.mark(job.id, status=status, error=error)
        if remove:
            self.delete(job.id, principal=principal)
        log.info("job marked", extra={"job_id": job.id, "status": status.value, "previous": previous,
                                      "removed": remove})
        return {"id": job.id, "status": status.value, "error": error, "previous_status": previous,
                "data_removed": remove}

    def delete(self, job_id: str, *, principal: Principal) -> None:
        """Cancel the job if it is queued or running, and delete it and everything it left: record,
        timeline, webhook deliveries, idempotency key, stored outputs. Later reads are 404."""
        job = self._owned(job_id, principal)
        self.store.delete(job)
        self.storage.delete_prefix(result_prefix(job.id))
        log.info("job deleted", extra={"job_id": job.id})

    def retry(self, job_id: str, *, principal: Principal,
              idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """A new job with the same input as a failed, cancelled or timed-out one (``retry_of`` links back).
        Returns ``(job view, created)``: with an Idempotency-Key used before for this job, the retry it
        made (``created`` False). Raises :class:`Conflict` for a job that is queued, running or succeeded,
        or a key used before for something else."""
        _check_idempotency_key(idempotency_key)
        job = self._owned(job_id, principal)
        fingerprint = _fingerprint(["retry", job.id]) if idempotency_key is not None else ""
        replayed = self._replayed(principal, idempotency_key, fingerprint)
        if replayed is not None:
            return replayed, False
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT):
            raise Conflict(f"job {job_id} is {job.status.value}; only failed, cancelled or timed-out jobs are retried")
        # Its parameters are canonical already; inputs are checked again (an upload may have expired).
        view, created, _ = self._create(self.catalog.get(job.type), dict(job.params), principal=principal,
                                        metadata=job.metadata, retry_of=job.id, idempotency_key=idempotency_key,
                                        fingerprint=fingerprint)
        return view, created

    def webhooks(self, job_id: str, *, principal: Principal) -> dict[str, Any]:
        """The job's webhook deliveries, each with every attempt."""
        job = self._owned(job_id, principal)
        return {"id": job.id, "notify_url": job.notify_url, "webhook": job.webhook,
                "deliveries": self.outbox.log(job.id)}

    def redeliver(self, job_id: str, *, principal: Principal) -> dict[str, Any]:
        """Send a finished job's completion webhook again (same webhook-id)."""
        job = self._owned(job_id, principal)
        if not job.notify_url:
            raise Conflict(f"job {job_id} has no notify_url")
        if not job.status.terminal or not self.outbox.redeliver(job.id):
            raise Conflict(f"job {job_id} has not finished; its webhook is sent when it does")
        return self.webhooks(job_id, principal=principal)

    def list_jobs(self, *, principal: Principal, status: str | None = None, job_type: str | None = None,
                  limit: str | None = None, cursor: str | None = None, created_after: str | None = None,
                  created_before: str | None = None, id_prefix: str | None = None) -> dict[str, Any]:
        """A page of jobs, newest first (``next_cursor`` for the next). Raises ValidationError naming a bad filter."""
        problems: list[FieldProblem] = []
        after = _timestamp("created_after", created_after, problems)
        before = _timestamp("created_before", created_before, problems)
        if status is not None and status not in {s.value for s in JobStatus}:
            problems.append(FieldProblem("status", f"must be one of {', '.join(s.value for s in JobStatus)}"))
        if job_type is not None and job_type not in self.catalog:
            problems.append(FieldProblem("type", f"must be one of {', '.join(self.catalog.names())}"))
        if id_prefix is not None and not re.fullmatch(r"[0-9a-f-]{1,36}", id_prefix):
            problems.append(FieldProblem("id_prefix", "must be the start of a job id: 1 to 36 of 0-9, a-f and -"))
        size = 20
        if limit is not None:
            if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= LIST_LIMIT_MAX:
                problems.append(FieldProblem("limit", f"must be an integer between 1 and {LIST_LIMIT_MAX}"))
            else:
                size = int(limit)
        if problems:
            raise ValidationError(problems)
        page = self.store.list(owner=None if principal.admin else principal.owner, status=status,
                               job_type=job_type, limit=size, cursor=cursor, created_after=after,
                               created_before=before, id_prefix=id_prefix,
                               shown_status=(lambda j: v1_status(j)[0]) if principal.compat == V1 else None)
        return {"jobs": [self._seen_by(principal, j, self.status_view(j, with_position=False)) for j in page.jobs],
                "next_cursor": page.next_cursor}


def _check_idempotency_key(key: str | None) -> None:
    if key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise ValidationError([FieldProblem("Idempotency-Key", "must be 1-255 printable ASCII characters")])


def _fingerprint(request: Any) -> str:
    """What an Idempotency-Key is bound to: the request, canonical JSON, hashed."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
