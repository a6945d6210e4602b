"""The runner: receive -> start -> engine -> record -> ack, one job at a time.

The runner owns admission, leases, cancellation and time limits; engines only
do the work. A :class:`Heartbeat` thread keeps the queue lease and the job's
claim alive while the engine runs, and stops the engine (through its
:class:`JobContext`) when the job is cancelled, passes ``max_time``, is lost,
or must be released because the worker is shutting down.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import Cancelled, EngineError, InputError, NodeError, NotFound, RenderError, Unavailable
from chalicelib.files.storage import ObjectStorage, result_key, result_prefix
from chalicelib.jobs.models import Job, JobStatus, Lease
from chalicelib.ops.logs import add_log_fields, log_context
from chalicelib.ops.metrics import Metrics
from chalicelib.queues.base import JobQueue
from chalicelib.security.urlpolicy import redact_url
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from worker import media
from worker.context import JobContext
from worker.engines.base import RESULT, Engine, Output, OutputFile
from worker.gpu.pool import GpuPool, PoolLease
from worker.inputs import fetch_inputs

log = logging.getLogger(__name__)

# A job's progress at each stage; the engine's own progress fills ENGINE_FROM/NODE_ACQUIRED..ENGINE_UNTIL.
INPUTS_FETCHED = 0.1
ENGINE_FROM = 0.1
NODE_ACQUIRED = 0.2
ENGINE_UNTIL = 0.9
STORED = 0.95


@dataclass(frozen=True)
class RunnerConfig:
    lease_s: float
    heartbeat_s: float
    shutdown_grace_s: float
    receive_wait_s: float = 1.0
    retry_base_delay_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        # The claim is refreshed well inside the lease, and at least every 2 s (progress, cancel).
        return cls(lease_s=settings.lease_s, heartbeat_s=min(settings.lease_s / 3, 2.0),
                   shutdown_grace_s=settings.worker_shutdown_grace_s)


@dataclass
class _Watched:
    lease: Lease
    job_id: str
    token: str
    ctx: JobContext
    last_beat: float = field(default_factory=time.monotonic)
    progress_said: float | None = None  # the progress of the last 'progress' event
    progress_said_at: float = 0.0


class Heartbeat(threading.Thread):
    """Extends the current lease and claim; turns flags and clocks into ``ctx.stop``."""

    TICK_S = 0.2

    def __init__(self, *, store: JobStore, queue: JobQueue, config: RunnerConfig, worker_id: str,
                 shutdown: threading.Event, pool: GpuPool | None = None) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.store, self.queue, self.config = store, queue, config
        self.pool = pool
        self._node_lease: PoolLease | None = None
        self.worker_id = worker_id
        self.shutdown = shutdown
        self.shutdown_at: float | None = None
        self._current: _Watched | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._last_alive = 0.0
        self.last_tick = time.monotonic()  # liveness: /healthz fails when this stops moving

    def watch(self, lease: Lease, job_id: str, token: str, ctx: JobContext) -> None:
        with self._lock:
            self._current = _Watched(lease, job_id, token, ctx)

    def unwatch(self) -> None:
        with self._lock:
            self._current = None

    def watch_node(self, lease: PoolLease | None) -> None:
        """Keep this GPU node slot alive with the job (None: the job gave it back)."""
        with self._lock:
            self._node_lease = lease

    def close(self) -> None:
        self._done.set()

    def run(self) -> None:
        while not self._done.wait(self.TICK_S):
            self.last_tick = time.monotonic()
            try:
                self._tick()
            except Unavailable as err:
                log.warning("heartbeat: %s", err, extra={"worker_id": self.worker_id})
            except Exception:  # a heartbeat bug must not silently end the heartbeats
                log.exception("heartbeat failed", extra={"worker_id": self.worker_id})

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_alive >= self.config.heartbeat_s:
            self.store.record_worker(self.worker_id)
            self._last_alive = now
        with self._lock:
            current = self._current
        if current is None:
            return
        ctx = current.ctx
        if now >= ctx.deadline:
            ctx.stop("timed_out")
        if self.shutdown.is_set():
            self.shutdown_at = self.shutdown_at or now
            if now - self.shutdown_at >= self.config.shutdown_grace_s:
                ctx.stop("released")
        self._progress_event(current, now)
        if now - current.last_beat < self.config.heartbeat_s:
            return
        current.last_beat = now
        self.queue.extend(current.lease, self.config.lease_s)
        with self._lock:
            node_lease = self._node_lease
        if node_lease is not None and self.pool is not None:
            self.pool.extend(node_lease)
        cancel = self.store.heartbeat(current.job_id, run_token=current.token, lease_s=self.config.lease_s,
                                      progress=ctx.progress)
        if cancel is None:
            # Not ours any more: taken over after a lost lease, or ended by someone else (marked by
            # its client with the first version's POST /job/{id}, or deleted).
            ctx.stop("ended" if self._ended_elsewhere(current.job_id) else "lost")
        elif cancel:
            ctx.stop("cancelled")


    def _ended_elsewhere(self, job_id: str) -> bool:
        try:
            return self.store.get(job_id).status.terminal
        except NotFound:
            return True
        except RenderError:
            return False

    @staticmethod
    def _progress_event(current: _Watched, now: float) -> None:
        """A 'progress' event on the timeline (and the job's progress) when it moved, at most two a second."""
        progress = current.ctx.progress
        if progress is None or progress == current.progress_said or now - current.progress_said_at < 0.5:
            return
        current.progress_said, current.progress_said_at = progress, now
        current.ctx.emit("progress", f"{progress:.0%}", progress=round(progress, 4))


@dataclass(frozen=True)
class Decision:
    """How a run ended, as the runner will record it."""

    status: JobStatus | None  # None: give the job back to the queue
    result: dict[str, Any] | None = None
    gpu_seconds: float | None = None
    error: str | None = None
    kind: str = ""
    retry_delay_s: float = 0.0
    refund_attempt: bool = False


class Runner:
    """Takes jobs off the queue and settles them; one instance per concurrent slot."""

    def __init__(self, *, store: JobStore, queue: JobQueue, engines: dict[str, Engine],
                 storage_factory: Callable[[], ObjectStorage], config: RunnerConfig,
                 worker_id: str | None = None, shutdown: threading.Event | None = None,
                 pool: GpuPool | None = None, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.pool = pool
        self.queue = queue
        self.engines = engines
        self._storage_factory = storage_factory
        self._storage: ObjectStorage | None = None
        self._uploads = ThreadPoolExecutor(4, thread_name_prefix="upload")
        self.config = config
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:8]}"
        self.shutdown = shutdown or threading.Event()
        self.heartbeat = Heartbeat(store=store, queue=queue, config=config, worker_id=self.worker_id,
                                   shutdown=self.shutdown, pool=pool)

    @property
    def storage(self) -> ObjectStorage:
        if self._storage is None:
            self._storage = self._storage_factory()
        return self._storage

    def run_forever(self) -> None:
        """Serve until ``shutdown`` is set; the job in hand is finished (or released) first."""
        try:
            self.store.record_worker(self.worker_id)  # visible in /health from the first moment
        except Unavailable as err:
            log.warning("cannot register the worker yet: %s", err, extra={"worker_id": self.worker_id})
        self.heartbeat.start()
        if self.pool is not None:
            # Its Comput3 calls may be slow; on its own thread they never delay a lease extension.
            threading.Thread(target=self._janitor_loop, daemon=True, name=f"janitor-{self.worker_id}").start()
        log.info("worker started", extra={"worker_id": self.worker_id})
        try:
            while not self.shutdown.is_set():
                try:
                    lease = self.queue.receive(self.config.receive_wait_s)
                    if lease is not None:
                        self.handle(lease)
                except Unavailable as err:
                    log.warning("backend unavailable, retrying: %s", err, extra={"worker_id": self.worker_id})
                    self.shutdown.wait(1.0)
        finally:
            self.heartbeat.close()
            self._uploads.shutdown(wait=False)
            try:
                self.store.forget_worker(self.worker_id)
            except Unavailable:
                pass
            log.info("worker stopped", extra={"worker_id": self.worker_id})

    def _janitor_loop(self) -> None:
        assert self.pool is not None
        while not self.shutdown.wait(1.0):
            try:
                self.pool.janitor()
            except RenderError as err:
                log.warning("pool janitor: %s", err, extra={"worker_id": self.worker_id})
            except Exception:  # keep sweeping: an unexpected error must not end housekeeping
                log.exception("pool janitor failed", extra={"worker_id": self.worker_id})

    def handle(self, lease: Lease) -> str:
        """Settle one delivery. Returns what happened (a status, or skip/busy/... for non-runs)."""
        token = uuid.uuid4().hex
        outcome = self.store.start(lease.job_id, run_token=token, lease_s=self.config.lease_s,
                                   worker_id=self.worker_id)
        if outcome.action == "busy":
            # Another live worker holds it (a duplicate delivery): look again after its lease.
            self.queue.nack(lease, delay_s=outcome.retry_after_s + 1)
            return "busy"
        if outcome.action != "run":
            log.info("delivery not run: %s", outcome.action, extra={"job_id": lease.job_id})
            self.queue.ack(lease)
            self._count_ended_at_start(lease.job_id, outcome.action)
            return outcome.action
        job = self.store.get(lease.job_id)
        with log_context(job_id=job.id, job_type=job.type, attempt=outcome.attempt, worker_id=self.worker_id):
            log.info("job started")
            if outcome.attempt == 1:
                self.metrics.queue_wait.labels(job.type).observe(max(0.0, time.time() - job.created_at))
            ctx = JobContext(job, max_time_s=job.max_time_s, emit=self._emitter(job.id, token))
            self.heartbeat.watch(lease, job.id, token, ctx)
            started = time.monotonic()
            try:
                decision = self._execute(job, ctx, attempt=outcome.attempt)
            finally:
                self.heartbeat.unwatch()
                ctx.cleanup()
            return self._record(lease, job, token, decision, time.monotonic() - started)

    def _storage_or_none(self) -> ObjectStorage | None:
        try:
            return self.storage
        except RenderError as err:
            log.warning("object storage unavailable: %s", err)
            return None

    def _emitter(self, job_id: str, token: str) -> Callable[..., None]:
        """``emit(kind, message, **fields)``: an event on the job's timeline (best effort: a store
        outage loses the event, not the job)."""
        def emit(kind: str, message: str, **fields: Any) -> None:
            try:
                self.store.add_event(job_id, run_token=token, kind=kind, message=message, **fields)
            except Unavailable as err:
                log.warning("event %s not recorded: %s", kind, err)
        return emit

    def _count_ended_at_start(self, job_id: str, action: str) -> None:
        """``start`` itself ends a job past its deadline (timed_out) or out of attempts (failed)."""
        status = {"expired": JobStatus.TIMED_OUT, "exhausted": JobStatus.FAILED}.get(action)
        if status is None:
            return
        try:
            kind = self.store.get(job_id).type
        except RenderError:
            return
        self.metrics.jobs_finished.labels(kind, status.value).inc()
        self.metrics.engine_errors.labels(kind, "deadline" if action == "expired" else "attempts").inc()

    def _execute(self, job: Job, ctx: JobContext, *, attempt: int) -> Decision:
        engine = self.engines.get(job.type)
        if engine is None:
            return Decision(JobStatus.FAILED, error=f"this worker has no engine for {job.type} jobs", kind="config")
        if engine.needs_node and self.pool is None:
            return Decision(JobStatus.FAILED, error="this worker has no GPU nodes configured", kind="config")
        try:
            ctx.check()
            self._fetch_inputs(engine, job, ctx)  # before any node: a caller's fault costs no GPU second
            gpu_seconds: float | None = None
            if engine.needs_node:
                output, gpu_seconds = self._on_node(engine, job, ctx, attempt=attempt)
            else:
                ctx.stage(ENGINE_FROM, engine_until=ENGINE_UNTIL)
                output = engine.run(job, None, ctx)
            ctx.check()  # a stop that landed while the engine was finishing still wins
            ctx.stage(ENGINE_UNTIL)
            result = self._store_outputs(job, engine, output)
            ctx.stage(STORED)
            if output.files:
                ctx.emit("output_stored", f"stored {len(output.files)} file(s)",
                         files=[{"name": f.stored_name, "bytes": f.path.stat().st_size} for f in output.files])
            if gpu_seconds is not None:
                result["metrics"] = {"run_s": round(gpu_seconds, 4), "node_s": round(ctx.node_s, 4)}
            return Decision(JobStatus.SUCCESS, result=result, gpu_seconds=gpu_seconds)
        except Cancelled:
            return self._stopped(ctx)
        except InputError as err:
            return Decision(JobStatus.FAILED, error=str(err), kind="input")
        except EngineError as err:
            if err.retryable and attempt < job.max_attempts:
                delay = self.config.retry_base_delay_s * (2 ** (attempt - 1))
                return Decision(None, error=str(err), kind="node", retry_delay_s=delay)
            return Decision(JobStatus.FAILED, error=str(err), kind="node" if err.retryable else "engine")
        except Exception:
            log.exception("engine crashed", extra={"job_id": job.id})
            return Decision(JobStatus.FAILED, error="internal error while rendering the job", kind="internal")

    def _on_node(self, engine: Engine, job: Job, ctx: JobContext, *, attempt: int) -> tuple[Output, float]:
        """Run the engine on a leased GPU node slot; returns its output and the seconds it held the slot.

        The slot is given back as soon as the engine returns (storing the outputs needs no GPU);
        a node that failed (a retryable error) is stopped and replaced.
        """
        assert self.pool is not None  # checked by _execute
        waiting = time.monotonic()
        lease = self.pool.acquire(ctx, queue_depth=self._queue_depth())
        node_failed = False
        try:
            self.store.set_fields(job.id, node=lease.node.name)
            add_log_fields(node=lease.node.name)
            self.heartbeat.watch_node(lease)
            ctx.emit("node_acquired", f"running on GPU node {lease.node.name}", node=lease.node.name,
                     waited_s=round(time.monotonic() - waiting, 3))
            ctx.stage(NODE_ACQUIRED, engine_until=ENGINE_UNTIL)
            started = time.monotonic()
            output = engine.run(job, lease.node, ctx)
            return output, time.monotonic() - started
        except EngineError as err:
            node_failed = err.retryable
            raise
        finally:
            self.heartbeat.watch_node(None)
            if node_failed:
                self.pool.fail(lease)
            else:
                self.pool.release(lease, gpu_seconds=ctx.node_s)

    def _fetch_inputs(self, engine: Engine, job: Job, ctx: JobContext) -> None:
        """Fetch and check the job's inputs into ``ctx.inputs`` (InputError: the caller's fault)."""
        if not engine.fetches_inputs or not (job.inputs or any(job.params.get(f.name)
                                                               for f in engine.spec.input_fields)):
            return
        ctx.inputs = fetch_inputs(engine.spec, job, limits=engine.deps.limits, workdir=ctx.workdir,
                                  storage=self._storage_or_none())
        total = sum(item.bytes for item in ctx.inputs.values())
        ctx.stage(INPUTS_FETCHED)
        ctx.emit("inputs_fetched", f"fetched {len(ctx.inputs)} input(s), {total} bytes",
                 inputs=[item.summary() for item in ctx.inputs.values()])

    def _store_outputs(self, job: Job, engine: Engine, output: Output) -> dict[str, Any]:
        """Check the engine's media files decode, store every file under ``results/<job id>/`` (in
        parallel) and build the result record. Raises :class:`NodeError` for media that does not
        decode (the node's fault: retried), :class:`EngineError` for a missing result."""
        record: dict[str, Any] = dict(output.extra)
        for produced in output.files:
            info = self._decodes(produced)
            if produced.content_type == "video/mp4":
                media.faststart(produced.path)  # its index at the front: players start at once
            if info is not None and produced.role == RESULT:
                record.setdefault("duration_s", round(info.duration_s, 3))
        if output.text is not None:
            record["text"] = output.text
        keys = [result_key(job.id, f.stored_name) for f in output.files]
        if output.files:
            list(self._uploads.map(lambda pair: self.storage.put_file(pair[1], pair[0].path, pair[0].content_type),
                                   zip(output.files, keys, strict=True)))
        for produced, key in zip(output.files, keys, strict=True):
            if produced.role == RESULT:
                record["key"] = key
            else:
                record.setdefault("files", {})[produced.role] = key
        if engine.spec.produces_file and "key" not in record:
            raise EngineError(f"the {job.type} engine produced no result file")
        if not engine.spec.produces_file and "text" not in record:
            raise EngineError(f"the {job.type} engine produced no text")
        return record

    def _drop_outputs(self, job: Job) -> None:
        """Delete what this run stored for a job that is no longer its own: a deleted job keeps nothing."""
        try:
            current = self.store.get(job.id) if self.store.exists(job.id) else None
            if current is not None and (not current.status.terminal or current.status is JobStatus.SUCCESS):
                return  # taken over by another run (a lost lease): its objects are that run's too
            self.storage.delete_prefix(result_prefix(job.id))  # deleted, or ended by its client meanwhile
        except RenderError as err:
            log.warning("could not delete a dropped result: %s", err)

    @staticmethod
    def _decodes(produced: OutputFile) -> media.MediaInfo | None:
        """The media file's streams and duration as the shipped ffmpeg reads them (None: not media)."""
        kind = produced.content_type.split("/")[0]
        if kind not in ("audio", "video"):
            return None
        info = media.probe(produced.path)
        if info is None or info.duration_s <= 0 or not (info.has_audio or info.has_video):
            size = produced.path.stat().st_size if produced.path.exists() else 0
            raise NodeError(f"the node returned {kind} that does not decode ({produced.stored_name}, {size} bytes)")
        return info

    def _queue_depth(self) -> int:
        try:
            return self.queue.depth()
        except Unavailable:
            return 0

    def _stopped(self, ctx: JobContext) -> Decision:
        reason = ctx.stop_reason or "cancelled"
        if reason == "timed_out":
            return Decision(JobStatus.TIMED_OUT, error=f"the job exceeded its max_time of {int(ctx.job.max_time_s)} s",
                            kind="max_time")
        if reason in ("released", "lost", "ended"):
            return Decision(None, error="", refund_attempt=reason == "released", kind=reason)
        return Decision(JobStatus.CANCELLED, error="cancelled by the client", kind="cancelled")

    def _record(self, lease: Lease, job: Job, token: str, decision: Decision, run_s: float) -> str:
        kind = job.type
        if decision.status is None and decision.kind == "ended":
            self.queue.ack(lease)  # ended by someone else (marked, deleted): nothing to requeue or record
            log.info("job ended elsewhere while it ran (marked or deleted by its client); its run stopped")
            return "ended"
        if decision.status is None:
            self.store.requeue(job.id, run_token=token, error=redact_url(decision.error or ""),
                               refund_attempt=decision.refund_attempt, delay_s=decision.retry_delay_s)
            self.queue.nack(lease, delay_s=decision.retry_delay_s)
            self.metrics.jobs_requeued.labels(kind, decision.kind or "released").inc()
            log.info("job given back to the queue (%s)", decision.error or "released")
            return "requeued"
        recorded = self.store.finish(job.id, run_token=token, status=decision.status, result=decision.result,
                                     error=redact_url(decision.error or ""), error_kind=decision.kind,
                                     gpu_seconds=decision.gpu_seconds)
        self.queue.ack(lease)
        if not recorded:
            log.warning("job was no longer ours (deleted, or taken over); result dropped")
            if decision.result and (decision.result.get("key") or decision.result.get("files")):
                self._drop_outputs(job)
            return "stale"
        if decision.result and (decision.result.get("key") or decision.result.get("files")):
            self.store.sweep_results_at(job.id, time.time() + self.store.result_ttl_s)
        log.info("job %s", decision.status.value)
        self.metrics.jobs_finished.labels(kind, decision.status.value).inc()
        self.metrics.job_seconds.labels(kind, decision.status.value).observe(run_s)
        if decision.status is not JobStatus.SUCCESS and decision.kind != "cancelled":
            self.metrics.engine_errors.labels(kind, decision.kind or "unknown").inc()
        return decision.status.value
