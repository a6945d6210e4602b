"""Job store: the source of truth for a job, in Redis.

Every multi-key change is one Lua script (``chalicelib/store/lua``), so transitions
are atomic: a duplicate delivery cannot run a finished job again, and a stale
worker cannot overwrite a result. Redis failures surface as
:class:`StoreUnavailable`.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import redis

from chalicelib.errors import (
    BudgetExceeded,
    Conflict,
    FieldProblem,
    NotFound,
    QueueFull,
    RateLimited,
    StoreUnavailable,
    ValidationError,
)
from chalicelib.jobs.models import DEFAULT_MAX_TIME_S, Admission, Job, JobStatus, RateState, now_s
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard, Scripts
from chalicelib.store.redisio import text as _s


@dataclass(frozen=True)
class StartOutcome:
    """What :meth:`JobStore.start` decided: ``run`` it, or why not."""

    action: str  # run | skip | busy | missing | expired | exhausted
    attempt: int = 0
    status: str | None = None
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class Created:
    job_id: str
    created_at: float
    created: bool  # False: an Idempotency-Key replay of job_id
    rate: RateState | None = None


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


_guard = RedisGuard(StoreUnavailable, "the job store (Redis)")
PROGRESS_WEBHOOK_EVERY_S = 5.0  # at most one 'progress' webhook per job this often
Events = list[dict[str, Any]]
Ids = list[str]


class JobStore:
    """Job records, transitions, listing, idempotency and cancel flags."""

    def __init__(self, client: redis.Redis, *, result_ttl_s: int, idempotency_ttl_s: int = 86400,
                 gpu_price_per_hour: float | None = None) -> None:
        self.redis = client
        self.result_ttl_s = result_ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.gpu_price_per_hour = gpu_price_per_hour  # a job's cost = its GPU seconds at this (None: no cost)
        self._scripts = Scripts(client)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 0.5, **kwargs: Any) -> JobStore:
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s, retry_on_timeout=False)
        return cls(client, **kwargs)

    # -- submit -------------------------------------------------------------

    def create(self, *, job_id: str, job_type: str, owner: str, params: dict[str, Any],
               max_attempts: int, idempotency_key: str | None = None, fingerprint: str = "",
               admission: Admission | None = None, enqueue_keys: tuple[str, str, int] | None = None,
               metadata: dict[str, Any] | None = None, inputs: dict[str, dict[str, str]] | None = None,
               retry_of: str | None = None) -> Created:
        """Admit and record a queued job, in one atomic step.

        ``admission`` charges the owner's rate limit and checks their queued-job cap;
        ``enqueue_keys`` (ready list, wake list, wake cap) of a Redis queue on this same
        server also enqueues the id. An Idempotency-Key already used for the same
        request returns the original job (``created=False``).

        ``inputs`` maps input fields to the bucket objects the worker reads (uploads, voices);
        ``metadata`` is the client's own object; ``retry_of`` the job this one retries.

        Raises :class:`RateLimited`, :class:`QueueFull`, :class:`Conflict` (key reused
        with another request) or :class:`StoreUnavailable`.
        """
        created = now_s()
        complete_in = float(params.get("complete_in", 3600))
        fields: dict[str, Any] = {
            "id": job_id, "type": job_type, "status": JobStatus.QUEUED.value, "owner": owner,
            "params": json.dumps(params, separators=(",", ":")), "created_at": created,
            "updated_at": created, "attempt": 0, "max_attempts": max_attempts,
            "deadline_at": created + complete_in, "max_time_s": params.get("max_time", DEFAULT_MAX_TIME_S),
            "notify_url": params.get("notify_url") or "",
            "notify_events": ",".join(params.get("notify_events") or []),
            "event_seq": 1,  # event 1, 'queued', is the creation itself (see events())
        }
        if metadata is not None:
            fields["metadata"] = json.dumps(metadata, separators=(",", ":"))
        if inputs:
            fields["inputs"] = json.dumps(inputs, separators=(",", ":"))
        if retry_of:
            fields["retry_of"] = retry_of
        if idempotency_key:
            fields["idempotency_key"] = idempotency_key
        limits = admission or Admission()
        interval = 1.0 / limits.rate_per_s if limits.rate_per_s > 0 else 0
        ready, wake, wake_cap = enqueue_keys or ("-", "-", 0)
        argv: list[Any] = [job_id, owner, "1" if idempotency_key else "0", fingerprint, self.idempotency_ttl_s,
                           int(complete_in + self.result_ttl_s), created, interval, limits.burst,
                           limits.max_queued, "1" if enqueue_keys else "0", wake_cap,
                           json.dumps({k: str(v) for k, v in fields.items()}, separators=(",", ":")),
                           limits.gpu_seconds_per_day, DEFAULT_GPU_ESTIMATE_S]
        today = utc_day(created)
        script_keys = [keys.job(job_id), keys.owner_index(owner), keys.ALL_JOBS, keys.JOB_SEQ,
                       keys.idempotency(owner, idempotency_key or "-"), keys.rate_state(owner),
                       keys.QUEUED_BY_OWNER, ready, wake, keys.QUEUED_SINCE, keys.usage(today, owner),
                       keys.gpu_pending(owner), keys.gpu_mean(job_type)]
        reply = _guard(lambda: self._scripts("create", keys=script_keys, args=argv))
        outcome = _s(reply[0])
        if outcome == "limited":
            raise RateLimited(retry_after_s=float(reply[1]), limit=limits.burst, reset_s=float(reply[2]))
        if outcome == "capped":
            raise QueueFull(f"this key already has {_s(reply[1])} queued jobs, its limit; "
                            "wait for some to start or cancel them")
        if outcome == "budget":
            used, pending, estimate = (float(x) for x in reply[1:4])
            budget = limits.gpu_seconds_per_day
            raise BudgetExceeded(
                f"this key's GPU budget for today is {budget:.0f} s: {used:.0f} s used, {pending:.0f} s estimated "
                f"for its queued and running jobs, and a {job_type} job takes about {estimate:.0f} s; it resets at "
                "00:00 UTC", retry_after_s=seconds_to_midnight(created))
        if outcome == "exists":
            prior_id, prior_fp = _s(reply[1]), _s(reply[2])
            if prior_fp != fingerprint:
                raise Conflict("Idempotency-Key was already used with a different request body")
            return Created(prior_id, 0.0, False)
        rate = None
        if interval:
            rate = RateState(limit=limits.burst, remaining=int(float(reply[2])), reset_s=float(reply[3]))
        return Created(job_id, created, True, rate)

    def charge(self, owner: str, admission: Admission) -> RateState:
        """Charge one request to the owner's rate limit. Raises :class:`RateLimited`."""
        interval = 1.0 / admission.rate_per_s
        reply = _guard(lambda: self._scripts("ratelimit", keys=[keys.rate_state(owner)],
                                               args=[now_s(), interval, admission.burst]))
        if int(reply[0]) != 1:
            raise RateLimited(retry_after_s=float(reply[2]), limit=admission.burst, reset_s=float(reply[3]))
        return RateState(limit=admission.burst, remaining=int(float(reply[1])), reset_s=float(reply[3]))

    def discard(self, job_id: str, owner: str, idempotency_key: str | None) -> None:
        """Undo :meth:`create` when the job could not be enqueued."""
        def run() -> None:
            pipe = self.redis.pipeline()
            pipe.delete(keys.job(job_id), keys.job_events(job_id))
            pipe.hincrby(keys.QUEUED_BY_OWNER, owner, -1)
            pipe.zrem(keys.QUEUED_SINCE, job_id)
            pipe.zrem(keys.owner_index(owner), job_id)
            pipe.zrem(keys.ALL_JOBS, job_id)
            if idempotency_key:
                pipe.delete(keys.idempotency(owner, idempotency_key))
            pipe.execute()
        _guard(run)

    # -- read ---------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job record. Raises :class:`NotFound` when it does not exist (or expired)."""
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(keys.job(job_id))))
        if not data:
            raise NotFound(f"job {job_id} not found")
        return Job.from_hash(data)

    def exists(self, job_id: str) -> bool:
        return bool(_guard(lambda: self.redis.exists(keys.job(job_id))))

    def get_many(self, job_ids: list[str]) -> list[Job | None]:
        def run() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hgetall(keys.job(job_id))
            return pipe.execute()
        return [Job.from_hash(d) if d else None for d in _guard(run)]

    def queue_position(self, job: Job) -> int:
        """Jobs ahead of this one, O(1): its sequence number minus the highest one started."""
        head = int(_guard(lambda: self.redis.get(keys.JOB_HEAD)) or 0)
        return max(0, job.seq - head - 1)

    def list(self, *, owner: str | None, status: str | None = None, job_type: str | None = None,
             limit: int = 20, cursor: str | None = None, scan_cap: int = 2000, created_after: float | None = None,
             created_before: float | None = None, shown_status: Callable[[Job], str] | None = None,
             id_prefix: str | None = None) -> Page:
        """Newest first, filtered; ``owner=None`` lists every owner's jobs (admin). ``created_after`` /
        ``created_before`` (unix s) bound the creation time; the scan stops at the first job older than
        ``created_after``. ``id_prefix``: only jobs whose id starts with it (a short id).

        Indexes are scored by the submit sequence number, so order is exact and
        a cursor is the last sequence number seen. Scans at most ``scan_cap``
        entries per call; ``next_cursor`` resumes.
        """
        index = keys.ALL_JOBS if owner is None else keys.owner_index(owner)
        below = _decode_cursor(cursor)
        found: list[Job] = []
        expired: list[str] = []
        last_seq: int | None = None
        scanned = 0
        full = ended = False
        while not (full or ended):
            top = "+inf" if below is None else f"({below}"
            rows = cast("list[tuple[str, float]]", _guard(partial(
                self.redis.zrevrangebyscore, index, top, "-inf", start=0, num=100, withscores=True)))
            ended = not rows
            for (job_id, score), job in zip(rows, self.get_many([r[0] for r in rows]), strict=True):
                scanned += 1
                last_seq = int(score)
                if job is None:
                    expired.append(job_id)
                    continue
                if created_after is not None and job.created_at < created_after:
                    ended = True  # newest first: every job from here on is older still
                    break
                seen = shown_status(job) if shown_status else job.status.value  # as the caller is shown it
                if (status is None or seen == status) and (job_type is None or job.type == job_type) \
                        and (created_before is None or job.created_at < created_before) \
                        and (id_prefix is None or job.id.startswith(id_prefix)):
                    found.append(job)
                full = len(found) == limit or scanned >= scan_cap
                if full:
                    break
            below = last_seq
        if expired:
            _guard(lambda: self.redis.zrem(index, *expired))
        return Page(found, _encode_cursor(last_seq) if full and last_seq is not None else None)

    # -- worker transitions ---------------------------------------------------

    def start(self, job_id: str, *, run_token: str, lease_s: float, worker_id: str) -> StartOutcome:
        now = now_s()
        reply = _guard(lambda: self._scripts(
            "start",
            keys=[keys.job(job_id), keys.JOB_HEAD, keys.WEBHOOK_DUE, keys.webhook(f"{job_id}-started"),
                  keys.webhook(f"{job_id}-completed"), keys.QUEUED_BY_OWNER, keys.QUEUED_SINCE,
                  keys.job_events(job_id)],
            args=[job_id, now, run_token, now + lease_s, worker_id, self.result_ttl_s, keys.job_channel(job_id)]))
        action = _s(reply[0])
        if action == "run":
            return StartOutcome("run", attempt=int(reply[1]))
        if action == "skip":
            return StartOutcome("skip", status=_s(reply[1]))
        if action == "busy":
            return StartOutcome("busy", retry_after_s=max(0.0, float(reply[1]) - now))
        return StartOutcome(action)

    def finish(self, job_id: str, *, run_token: str, status: JobStatus, result: dict[str, Any] | None = None,
               error: str | None = None, error_kind: str = "", gpu_seconds: float | None = None) -> bool:
        """End a running job. Returns False when the token is stale (someone else owns it)."""
        reply = _guard(lambda: self._scripts(
            "finish",
            keys=[keys.job(job_id), keys.WEBHOOK_DUE, keys.webhook(f"{job_id}-completed"), keys.job_events(job_id)],
            args=[job_id, run_token, status.value, now_s(),
                  json.dumps(result, separators=(",", ":")) if result is not None else "",
                  error or "", error_kind, self.result_ttl_s,
                  "" if gpu_seconds is None else round(gpu_seconds, 3), keys.job_channel(job_id),
                  "" if self.gpu_price_per_hour is None else self.gpu_price_per_hour / 3600, utc_day(now_s()),
                  USAGE_TTL_S]))
        return _s(reply) == "ok"

    def requeue(self, job_id: str, *, run_token: str, error: str = "", refund_attempt: bool = False,
                delay_s: float = 0.0) -> bool:
        """Give a running job back to the queue (a ``retry`` event; ``requeued`` when the attempt is refunded)."""
        reply = _guard(lambda: self._scripts(
            "requeue",
            keys=[keys.job(job_id), keys.QUEUED_BY_OWNER, keys.QUEUED_SINCE, keys.job_events(job_id)],
            args=[run_token, now_s(), error, "1" if refund_attempt else "0", keys.job_channel(job_id),
                  round(delay_s, 3)]))
        return _s(reply) == "ok"

    def add_event(self, job_id: str, *, run_token: str, kind: str, message: str, **fields: Any) -> int:
        """Add an event to a running job's timeline (0 when the run is no longer ``run_token``'s).
        A ``progress`` event also sends a progress webhook when the job asked for them (throttled)."""
        return int(_guard(lambda: self._scripts(
            "event", keys=[keys.job(job_id), keys.job_events(job_id), keys.WEBHOOK_DUE],
            args=[run_token, now_s(), kind, message, json.dumps(fields, separators=(",", ":")),
                  keys.job_channel(job_id), keys.WEBHOOK_PREFIX, self.result_ttl_s, PROGRESS_WEBHOOK_EVERY_S])))

    def events(self, job: Job, *, after: int = 0) -> Events:
        """The job's timeline after event ``after`` (its seq), oldest first. The first event, 'queued',
        is the job's creation (create.lua records no event, to keep a submit cheap)."""
        raw = _guard(lambda: self.redis.lrange(keys.job_events(job.id), 0, -1))
        queued = {"seq": 1, "at": job.created_at, "type": "queued", "message": "queued"}
        events = [queued, *(json.loads(item) for item in raw)]
        return [event for event in events if int(event["seq"]) > after]

    def heartbeat(self, job_id: str, *, run_token: str, lease_s: float,
                  progress: float | None = None) -> bool | None:
        """Extend the claim. Returns the cancel flag, or None when the job is no longer ours."""
        now = now_s()
        reply = _guard(lambda: self._scripts(
            "heartbeat",
            keys=[keys.job(job_id)],
            args=[run_token, now + lease_s, now, "" if progress is None else round(progress, 4)]))
        if _s(reply[0]) != "ok":
            return None
        return _s(reply[1]) == "1"

    def set_fields(self, job_id: str, **values: Any) -> None:
        _guard(lambda: self.redis.hset(keys.job(job_id), mapping={k: str(v) for k, v in values.items()}))

    # -- client actions ---------------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """Returns ``cancelled`` (was queued), ``cancelling`` (running: flagged) or the terminal status."""
        reply = _guard(lambda: self._scripts(
            "cancel",
            keys=[keys.job(job_id), keys.WEBHOOK_DUE, keys.webhook(f"{job_id}-completed"), keys.QUEUED_BY_OWNER,
                  keys.QUEUED_SINCE, keys.job_events(job_id)],
            args=[job_id, now_s(), self.result_ttl_s, keys.job_channel(job_id)]))
        action = _s(reply[0])
        if action == "missing":
            raise NotFound(f"job {job_id} not found")
        if action == "terminal":
            return _s(reply[1])
        return action

    # -- GPU usage (recorded by finish.lua, admitted against by create.lua) ---------------------------

    def usage(self, day: str, owner: str) -> dict[str, Any]:
        """``{jobs, gpu_seconds, cost}`` of the owner's jobs that ended on that UTC day (YYYYMMDD)."""
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(keys.usage(day, owner))))
        cost = data.get("cost")
        return {"jobs": int(data.get("jobs") or 0), "gpu_seconds": round(float(data.get("gpu_seconds") or 0), 3),
                "cost": round(float(cost), 4) if cost else (None if self.gpu_price_per_hour is None else 0.0)}

    def usage_owners(self, day: str) -> set[str]:
        return set(cast("set[str]", _guard(lambda: self.redis.smembers(keys.usage_owners(day)))))

    def pending_gpu(self, owner: str) -> float:
        """The GPU seconds estimated for the owner's queued and running jobs."""
        return max(0.0, float(_guard(lambda: self.redis.get(keys.gpu_pending(owner))) or 0))

    def mark(self, job_id: str, *, status: JobStatus, error: str) -> str:
        """Set a job's status as the client says (mark.lua); returns the status it had. Raises NotFound."""
        previous = _s(_guard(lambda: self._scripts(
            "mark", keys=[keys.job(job_id), keys.QUEUED_BY_OWNER, keys.QUEUED_SINCE, keys.job_events(job_id)],
            args=[job_id, now_s(), self.result_ttl_s, keys.job_channel(job_id), status.value, error])))
        if previous == "missing":
            raise NotFound(f"job {job_id} not found")
        return previous

    def delete(self, job: Job) -> str:
        """Delete the job's record and everything it left in Redis; returns the status it had
        (``missing`` when it was gone already)."""
        started, completed = f"{job.id}-started", f"{job.id}-completed"
        return _s(_guard(lambda: self._scripts(
            "delete",
            keys=[keys.job(job.id), keys.job_events(job.id), keys.owner_index(job.owner), keys.ALL_JOBS,
                  keys.QUEUED_BY_OWNER, keys.QUEUED_SINCE, keys.WEBHOOK_DUE, keys.RESULTS_EXPIRING,
                  keys.webhook(started), keys.webhook_attempts(started), keys.webhook(completed),
                  keys.webhook_attempts(completed)],
            args=[job.id, keys.idempotency(job.owner, ""), keys.job_channel(job.id), started, completed])))

    def sweep_results_at(self, job_id: str, when: float) -> None:
        """The job's result objects may be deleted from ``when`` (its record is gone by then)."""
        _guard(lambda: self.redis.zadd(keys.RESULTS_EXPIRING, {job_id: when}))

    def results_due(self, now: float, limit: int = 200) -> Ids:
        """Jobs whose result objects are due for deletion."""
        return [str(j) for j in _guard(lambda: self.redis.zrangebyscore(keys.RESULTS_EXPIRING, "-inf", now,
                                                                        start=0, num=limit))]

    def results_swept(self, job_ids: Ids) -> None:
        if job_ids:
            _guard(lambda: self.redis.zrem(keys.RESULTS_EXPIRING, *job_ids))

    def lock(self, name: str, *, ttl_s: float) -> bool:
        """A named lock for housekeeping one process at a time (True: taken)."""
        return bool(_guard(lambda: self.redis.set(keys.lock(name), "1", nx=True, px=int(ttl_s * 1000))))

    def unlock(self, name: str) -> None:
        _guard(lambda: self.redis.delete(keys.lock(name)))

    def idempotent_job(self, owner: str, key: str) -> tuple[str, str] | None:
        """``(job id, fingerprint)`` an Idempotency-Key was used for, if it was."""
        value = _guard(lambda: self.redis.get(keys.idempotency(owner, key)))
        if not value:
            return None
        job_id, _, fingerprint = str(value).partition(" ")
        return job_id, fingerprint

    # -- health ---------------------------------------------------------------

    def ping(self) -> None:
        _guard(self.redis.ping)

    def record_worker(self, worker_id: str) -> None:
        """A worker's heartbeat; entries of workers gone for an hour are dropped meanwhile."""
        def run() -> None:
            now = now_s()
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(keys.WORKERS, {worker_id: now})
            pipe.zremrangebyscore(keys.WORKERS, "-inf", now - 3600)
            pipe.execute()
        _guard(run)

    def forget_worker(self, worker_id: str) -> None:
        _guard(lambda: self.redis.zrem(keys.WORKERS, worker_id))

    def live_workers(self, within_s: float) -> int:
        """Worker slots that sent a heartbeat within ``within_s`` (read only)."""
        return int(_guard(lambda: self.redis.zcount(keys.WORKERS, now_s() - within_s, "+inf")))

    def queued_count(self) -> int:
        """Jobs in the queued state, by the store's own index."""
        return int(_guard(lambda: self.redis.zcard(keys.QUEUED_SINCE)))

    def oldest_queued_age(self, now: float) -> float:
        """Seconds the longest-waiting queued job has waited, 0 when none.

        A queued job whose record expired (its deadline and retention passed) leaves its
        index entry behind; those are dropped here, a few at a time.
        """
        for _ in range(10):
            head = cast("list[tuple[str, float]]",
                        _guard(lambda: self.redis.zrange(keys.QUEUED_SINCE, 0, 0, withscores=True)))
            if not head:
                return 0.0
            job_id, since = head[0]
            if _guard(partial(self.redis.exists, keys.job(job_id))):
                return max(0.0, now - float(since))
            _guard(partial(self.redis.zrem, keys.QUEUED_SINCE, job_id))
        return 0.0


DEFAULT_GPU_ESTIMATE_S = 60.0  # a job's GPU seconds before any job of its type has finished (budgets)
USAGE_TTL_S = 400 * 86400  # how long the per-day usage counters are kept


def utc_day(ts: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(ts))


def seconds_to_midnight(ts: float) -> float:
    """Seconds from ``ts`` to the next 00:00 UTC (when a day's GPU budget resets)."""
    return 86400 - ts % 86400


def _encode_cursor(seq: int) -> str:
    """A page's cursor: the submit sequence number of the last job on it (the next page lists older ones)."""
    return str(seq)


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", cursor):
        raise ValidationError([FieldProblem("cursor", "is not a cursor this API returned (digits)")])
    return int(cursor)
