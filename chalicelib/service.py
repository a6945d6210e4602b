"""What the API does, behind the routes: submit, status, result, cancel, list, health.

Routes in ``app.py`` parse the HTTP request, call one method here, and turn
the returned dict (or a :class:`RenderError`) into a response.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.auth import ApiKey, KeyStore, presented_key, static_admin
from chalicelib.compat import V1, as_v1, mark_request, v1_body, v1_status, valid_id
from chalicelib.errors import (
    BadRequest,
    Conflict,
    FieldProblem,
    Forbidden,
    NotFound,
    NotReady,
    RenderError,
    ValidationError,
)
from chalicelib.filelinks import FileLinks
from chalicelib.files import Files
from chalicelib.jobspec import Catalog, JobSpec
from chalicelib.metrics import Metrics
from chalicelib.models import Admission, Job, JobStatus, RateState, iso
from chalicelib.outbox import Outbox
from chalicelib.poolstore import PoolStore, count_by_state
from chalicelib.queues.base import JobQueue
from chalicelib.schemas import civil_from_days, parse_date, parse_date_time
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStorage, result_prefix
from chalicelib.store import JobStore
from chalicelib.uploads import UploadStore
from chalicelib.urlpolicy import redact_url
from chalicelib.voices import VoiceStore
from chalicelib.waiters import JobWatcher

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"  # printable ASCII, 1-255 characters, no edge spaces
FILE_REDIRECT_TTL_S = 900  # a lasting link redirects to a URL presigned for this long
LIST_LIMIT_MAX = 100


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner of the jobs they create; admins see every owner's jobs."""

    owner: str
    admin: bool = False
    admission: Admission | None = None  # the key's limits; None: unlimited
    compat: str = ""  # "v1": answered as the first version answered (chalicelib/compat.py)


ANONYMOUS = Principal(owner="anonymous")
ADMIN = Principal(owner="admin", admin=True)


def _timestamp(name: str, value: str | None, problems: list[FieldProblem]) -> float | None:
    """An RFC 3339 date-time (``2026-11-28T10:00:00Z``, a zone required) as unix seconds."""
    if value is None:
        return None
    seconds = parse_date_time(value)
    if seconds is None:
        problems.append(FieldProblem(name, "must be an RFC 3339 date-time with a time zone, such as "
                                     "2026-11-28T10:00:00Z"))
    return seconds


def _day(name: str, value: str | None, problems: list[FieldProblem]) -> int | None:
    """A full date (``2026-11-28``) as its day number."""
    if value is None:
        return None
    day = parse_date(value)
    if day is None:
        problems.append(FieldProblem(name, "must be a date, such as 2026-11-28"))
    return day


def job_defaults(settings: Settings) -> dict[str, int]:
    """The defaults of the common job fields that are settings (the first version's names)."""
    return {"complete_in": settings.default_complete_in, "max_time": settings.default_max_time}


def links(job_id: str) -> dict[str, str]:
    return {"status": f"/status/{job_id}", "result": f"/result/{job_id}", "cancel": f"/jobs/{job_id}/cancel"}


class RenderService:
    """The API's operations over a job store, a queue and (lazily) object storage."""

    def __init__(self, *, settings: Settings, catalog: Catalog, store: JobStore, queue: JobQueue, outbox: Outbox,
                 pool: PoolStore, keys: KeyStore, storage_factory: Callable[[], ObjectStorage], watcher: JobWatcher,
                 uploads: UploadStore, voices: VoiceStore, links: FileLinks, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.files = Files(settings=settings, uploads=uploads, voices=voices, links=links,
                           storage=lambda: self.storage)
        self.watcher = watcher
        self.catalog = catalog
        self.metrics = metrics or Metrics()
        self.store = store
        self.pool = pool
        self.outbox = outbox
        self.keys = keys
        self.queue = queue
        self._storage_factory = storage_factory
        self._storage: ObjectStorage | None = None
        # When the queue lives in the store's Redis, a submit records and enqueues in one step.
        self._colocated = queue.colocated_keys(store.redis)
        self._defaults = job_defaults(settings)
        self._v1_imported = False

    @property
    def storage(self) -> ObjectStorage:
        if self._storage is None:
            self._storage = self._storage_factory()
        return self._storage

    # -- callers ----------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Who sent these headers. Raises :class:`Unauthorized` (401)."""
        if not self.settings.auth_required:
            return ANONYMOUS
        key = presented_key(headers)
        if static_admin(key, self.settings.admin_api_key):
            return ADMIN
        if not self._v1_imported and static_admin(key, self.settings.c3_render_key):
            # The first version's static key: recorded as a v1 key the first time it is used.
            self.keys.create(name="first version (C3_RENDER_KEY)", compat="v1", key=key)
            self._v1_imported = True
        record = self.keys.authenticate(key)
        return Principal(owner=record.id, admin=record.admin, admission=record.admission, compat=record.compat)

    def charge(self, principal: Principal) -> RateState | None:
        """Charge one request to the caller's rate limit. Raises :class:`RateLimited` (429)."""
        if principal.admission is None or principal.admission.rate_per_s <= 0:
            return None
        return self.store.charge(principal.owner, principal.admission)

    def charge_address(self, address: str) -> None:
        """Charge a request that carried no valid key to the client's address (``UNAUTHENTICATED_RATE_PER_S``).
        Raises :class:`RateLimited` (429) once the address is past its limit."""
        rate = self.settings.unauthenticated_rate_per_s
        if rate > 0:
            self.store.charge(f"address:{address}", Admission(rate_per_s=rate,
                                                              burst=self.settings.unauthenticated_burst))

    # -- the caller's own key ---------------------------------------------------

    def _own_key(self, principal: Principal) -> ApiKey:
        if not principal.owner.startswith("key_"):
            raise Conflict("this caller has no API key record of its own (the static ADMIN_API_KEY, or no auth); "
                           "its jobs' webhooks are signed with WEBHOOK_SECRET")
        return self.keys.get(principal.owner)

    def me(self, principal: Principal) -> dict[str, Any]:
        """The calling key: its id, name, limits and whether it is an admin key."""
        if not principal.owner.startswith("key_"):
            return {"id": principal.owner, "admin": principal.admin}
        return self._own_key(principal).public()

    def webhook_secret(self, principal: Principal) -> dict[str, Any]:
        """The secret that signs the calling key's webhooks (and the previous one while it still does)."""
        record = self._own_key(principal)
        view: dict[str, Any] = {"webhook_secret": record.webhook_secret}
        if record.previous_webhook_secret and record.previous_valid_until > time.time():
            view["previous_webhook_secret"] = record.previous_webhook_secret
            view["previous_valid_until"] = iso(record.previous_valid_until)
        return view

    def rotate_webhook_secret(self, principal: Principal) -> dict[str, Any]:
        """A new secret for the calling key; the old one keeps signing for WEBHOOK_SECRET_OVERLAP_S."""
        record = self._own_key(principal)
        self.keys.rotate_secret(record.id, overlap_s=self.settings.webhook_secret_overlap_s)
        return self.webhook_secret(principal)

    # -- submit ---------------------------------------------------------------

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
        """A view as the caller's compatibility mode shows it (chalicelib/compat.py)."""
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

    def file_url(self, token: str) -> str:
        """A lasting result link's object, as a URL presigned now. Raises NotFound or LinkExpired (410)."""
        key = self.files.links.resolve(token)
        if not key.startswith("results/") or self.storage.head(key) is None:
            raise NotFound("the file is gone: its job's results were deleted or expired")
        return self.storage.presign(key, ttl_s=FILE_REDIRECT_TTL_S)

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

    def nodes(self, *, principal: Principal) -> dict[str, Any]:
        """The GPU pool (admins): every node with state, slots in use, jobs run, times, and what it has
        billed so far and cost; the total, and the node-seconds billed in the last hour."""
        if not principal.admin:
            raise Forbidden("listing GPU nodes needs an admin key")
        now = time.time()
        price = self.settings.price_per_hour()
        nodes = []
        for node in self.pool.nodes():
            billed = max(0.0, now - node["launched_at"]) if node["launched_at"] and not node["static"] else 0.0
            nodes.append({**node, "billed_s": round(billed, 1),
                          "spend": None if price is None else round(billed * price / 3600, 4)})
        live = sum(n["billed_s"] for n in nodes)
        stopped = self.pool.billed_total()
        hour = self.pool.billed_since(now - 3600, now)
        return {"nodes": nodes, "total": {
            "billed_s": round(live + stopped, 1), "live_billed_s": round(live, 1),
            "spend": None if price is None else round((live + stopped) * price / 3600, 4),
            "billed_s_last_hour": round(hour, 1), "max_node_seconds_per_hour": self.settings.max_node_seconds_per_hour,
            "price_per_hour": price}}

    def usage(self, *, principal: Principal, date_from: str | None = None,
              date_to: str | None = None) -> dict[str, Any]:
        """GPU usage per UTC day (``from``..``to``, full dates, inclusive; default today): jobs that ended
        on a worker, their GPU seconds and cost, for the calling key (admins: every key), and the
        key's budget for today. Days before the kept history (400 days) or after today are empty."""
        problems: list[FieldProblem] = []
        today = int(time.time() // 86400)
        first = _day("from", date_from, problems)
        last = _day("to", date_to, problems)
        if problems:
            raise ValidationError(problems)
        first = today if first is None and last is None else first if first is not None else last
        last = today if last is None else last
        assert first is not None
        days = [civil_from_days(d) for d in range(max(first, today - 399), min(last, today) + 1)]
        owners: set[str]
        if principal.admin:
            owners = set()
            for day in days:
                owners |= self.store.usage_owners(day.replace("-", ""))
        else:
            owners = {principal.owner}
        entries = [self._owner_usage(owner, days, today_seen=civil_from_days(today) in days)
                   for owner in sorted(owners)]
        price = self.settings.price_per_hour()
        total = {k: round(sum(e[k] for e in entries), 4) for k in ("jobs", "gpu_seconds")}
        total["cost"] = None if price is None else round(sum(e["cost"] or 0 for e in entries), 4)
        return {"from": civil_from_days(first), "to": civil_from_days(last), "price_per_hour": price,
                "keys": entries, "total": total}

    def _owner_usage(self, owner: str, days: list[str], *, today_seen: bool) -> dict[str, Any]:
        rows = []
        for day in days:
            used = self.store.usage(day.replace("-", ""), owner)
            if used["jobs"] or used["gpu_seconds"]:
                rows.append({"date": day, **used})
        entry: dict[str, Any] = {
            "key_id": owner, "jobs": sum(r["jobs"] for r in rows),
            "gpu_seconds": round(sum(r["gpu_seconds"] for r in rows), 3),
            "cost": None if self.settings.price_per_hour() is None else round(sum(r["cost"] or 0 for r in rows), 4),
            "days": rows}
        budget = 0.0
        entry["key_name"] = None
        if owner.startswith("key_"):
            try:
                record = self.keys.get(owner)
                budget, entry["key_name"] = record.gpu_seconds_per_day, record.name
            except NotFound:
                budget = 0.0
        if budget and today_seen:
            used_today = next((r["gpu_seconds"] for r in rows if r["date"] == rows[-1]["date"]
                               and r["date"] == civil_from_days(int(time.time() // 86400))), 0.0)
            pending = self.store.pending_gpu(owner)
            entry["budget"] = {"gpu_seconds_per_day": budget, "used_today": used_today,
                               "pending_gpu_seconds": round(pending, 3),
                               "remaining": round(max(0.0, budget - used_today - pending), 3),
                               "resets_at": iso((time.time() // 86400 + 1) * 86400)}
        return entry

    # -- health ---------------------------------------------------------------

    def health(self) -> tuple[dict[str, Any], bool]:
        """Returns ``(report, healthy)``; never raises for a backend being down."""
        report: dict[str, Any] = {"status": "ok"}
        healthy = True
        try:
            self.store.ping()
            report["redis"] = "ok"
            report["workers"] = {"live": self.store.live_workers(within_s=self.settings.worker_heartbeat_s * 3)}
            report["gpu_nodes"] = {state: n for state, n in count_by_state(self.pool.nodes()).items() if n}
        except RenderError as err:
            report["redis"] = str(err)
            healthy = False
        try:
            report["queue"] = {"backend": self.queue.backend, "depth": self.queue.depth()}
        except RenderError as err:
            report["queue"] = {"backend": self.queue.backend, "error": str(err)}
            healthy = False
        if not healthy:
            report["status"] = "unavailable"
        return report, healthy


def _check_idempotency_key(key: str | None) -> None:
    if key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise ValidationError([FieldProblem("Idempotency-Key", "must be 1-255 printable ASCII characters")])


def _fingerprint(request: Any) -> str:
    """What an Idempotency-Key is bound to: the request, canonical JSON, hashed."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
