"""One pool of GPU nodes shared by every worker process, its state in Redis.

- A job takes a slot on a ready node (``JOBS_PER_NODE`` slots each) that will not
  expire before the job's ``max_time`` could end; the slot is a lease that the
  worker's heartbeat extends, so a dead worker's slot comes back by itself. Which free
  node: ``POOL_PLACEMENT`` spread (the least recently used: every node up stays warm)
  or pack (the latest used: surplus nodes go idle and stop).
- When no node can take the job, exactly one caller is told to launch (a record is
  written first); others wait. More launches happen only while the queue per node
  is past ``SCALE_UP_QUEUE_PER_NODE``, and never past ``MAX_GPU_NODES``.
- A janitor (one worker at a time, under a Redis lock) stops nodes idle for
  ``GPU_IDLE_TIMEOUT``; replaces idle nodes too near expiry for a job of the default
  ``max_time`` (the replacement keeps the old node's idle clock); adopts nodes whose
  launcher died, clears launches that never came up, and stops running workloads of
  ours that the pool does not know.
- A provider that cannot launch (``GPU_PROVIDER=static``) has its nodes registered as
  permanent: never launched, never stopped.

The state lives in Redis behind :class:`~chalicelib.store.pool.PoolStore`; this module decides.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

import requests

from chalicelib.errors import EngineError, NodeError
from chalicelib.jobs.models import DEFAULT_MAX_TIME_S
from chalicelib.ops.metrics import Metrics
from chalicelib.settings import Settings
from chalicelib.store.pool import AcquireRequest, PoolStore
from worker.context import JobContext
from worker.gpu.nodes import GpuProvider, Node

log = logging.getLogger(__name__)

LAUNCH_WAIT_S = 300.0  # what a job waits for Comput3 itself, beyond the node's own readiness
LAUNCH_ESTIMATE_S = 90.0  # how long a Comput3 launch takes to be ready, about (the hourly guard's estimate)
STOP_RETRY_S = 5.0  # a failed stop is tried again after this, doubling each time...
STOP_RETRY_MAX_S = 300.0  # ...up to this
STOP_STUCK_S = 60.0  # a node marked stopping this long with no stop recorded (its worker died) is stopped again


@dataclass(frozen=True)
class PoolConfig:
    """The pool's settings (each from :class:`Settings`: see :meth:`from_settings`) and a few constants."""

    jobs_per_node: int
    max_nodes: int
    scale_up_queue_per_node: float
    scale_up_after_s: float  # a job that waited this long for a busy node gets a launch
    idle_timeout_s: float
    surplus_idle_s: float  # idle nodes beyond the one kept warm (below idle_timeout_s: stop sooner)
    lease_s: float
    ready_timeout_s: float
    acquire_timeout_s: float
    expiry_margin_s: float
    placement: str  # spread | pack: see pool_acquire.lua
    # An idle node that could no longer take a job of the default max_time is spent: it is
    # stopped rather than left idling, and a fresh one is launched when needed.
    typical_job_s: float = DEFAULT_MAX_TIME_S
    max_node_seconds_per_hour: float = 0.0  # MAX_NODE_SECONDS_PER_HOUR (0: no guard)
    launch_estimate_s: float = LAUNCH_ESTIMATE_S
    reconcile_every_s: float = 120.0
    unknown_grace_s: float = 120.0
    janitor_every_s: float = 5.0
    poll_s: float = 0.25  # how often a waiting job looks for a free node, and a launch for readiness

    @classmethod
    def from_settings(cls, settings: Settings, *, can_launch: bool) -> PoolConfig:
        """The pool's config; a provider that cannot launch has exactly its listed nodes."""
        return cls(jobs_per_node=settings.jobs_per_node,
                   max_nodes=settings.max_gpu_nodes if can_launch else len(settings.static_nodes),
                   scale_up_queue_per_node=settings.scale_up_queue_per_node,
                   scale_up_after_s=settings.scale_up_after_s, idle_timeout_s=settings.gpu_idle_timeout_s,
                   surplus_idle_s=(settings.gpu_surplus_idle_s if settings.gpu_surplus_idle_s is not None
                                   else settings.gpu_idle_timeout_s),
                   lease_s=settings.lease_s, ready_timeout_s=settings.node_ready_timeout_s,
                   # A static node is ready or not; a launch also waits for Comput3 itself.
                   acquire_timeout_s=settings.node_ready_timeout_s + (LAUNCH_WAIT_S if can_launch else 0),
                   expiry_margin_s=settings.gpu_expiry_margin_s, placement=settings.pool_placement,
                   typical_job_s=settings.default_max_time,
                   max_node_seconds_per_hour=settings.max_node_seconds_per_hour or 0.0,
                   reconcile_every_s=settings.reconcile_every_s)

    @property
    def new_node_min_s(self) -> float:
        """The least a launched node bills: its launch, and an idle timeout after its one job."""
        return self.launch_estimate_s + self.surplus_idle_s


@dataclass
class _Launch:
    """One launch in flight, watched by the job that asked for it."""

    placeholder: str
    token: str
    idle_since: float | None = None  # a replacement's: the idle clock of the node it replaces
    finished: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


@dataclass(frozen=True)
class PoolLease:
    node: Node
    token: str


class GpuPool:
    def __init__(self, *, store: PoolStore, provider: GpuProvider, config: PoolConfig,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.provider = provider
        self.config = config
        self._healthy_until: dict[str, float] = {}
        self._last_unhealthy = ""
        self._last_janitor = 0.0
        self._last_reconcile = 0.0
        if not provider.can_launch:
            store.register_static([node.name for node in provider.list()])

    def node(self, name: str) -> Node:
        data = self.store.record(name)
        expires = float(data.get("expires") or 0) or None
        return self.provider.node(name, workload=data.get("workload") or None, expires=expires)

    # -- jobs -----------------------------------------------------------------

    def acquire(self, ctx: JobContext, *, queue_depth: int = 0) -> PoolLease:
        """A healthy node with a free slot for this job; launches one when none can take it.

        A launch runs on its own thread and the new node joins the pool when it is ready;
        meanwhile this job keeps looking, so it takes whichever slot frees first (a busy node
        finishing, or the new node), and a job cancelled meanwhile does not waste the launch.

        Raises :class:`NodeError` when no node is ready within ``acquire_timeout_s``, or the
        launch's error when this job's launch failed and no other node came free.
        """
        started = time.monotonic()
        deadline = started + self.config.acquire_timeout_s
        token = secrets.token_hex(8)
        try:
            return self._acquire_loop(ctx, queue_depth, token, started, deadline)
        finally:
            self.store.stop_waiting(token)

    def _acquire_loop(self, ctx: JobContext, queue_depth: int, token: str, started: float,
                      deadline: float) -> PoolLease:
        reason = ""
        launch: _Launch | None = None
        while time.monotonic() < deadline:
            ctx.check()
            if launch is not None and launch.error is not None:
                raise launch.error
            now = time.time()
            job_end = now + ctx.remaining_s() + self.config.expiry_margin_s  # the node must outlive the job
            request = AcquireRequest(
                now=now, lease_until=now + self.config.lease_s, job_end=job_end,
                jobs_per_node=self.config.jobs_per_node, max_nodes=self.config.max_nodes, queue_depth=queue_depth,
                scale_up_queue_per_node=self.config.scale_up_queue_per_node, token=token,
                may_launch=launch is None or launch.finished.is_set(),  # one launch in flight per job at most
                waited_s=time.monotonic() - started, scale_up_after_s=self.config.scale_up_after_s,
                placement=self.config.placement, max_node_seconds_per_hour=self.config.max_node_seconds_per_hour,
                new_node_min_s=self.config.new_node_min_s)
            action, value, burst = self.store.acquire(request, placeholder=f"launch-{token}")
            if action == "node":
                lease = PoolLease(self.node(value), token)
                if self._healthy(lease.node):
                    return lease
                self.fail(lease)  # it takes no more jobs; the next look finds another node or launches
                reason = "no healthy node"
            if action == "launch":
                launch = _Launch(value, token)
                threading.Thread(target=self._launch, args=(launch,), daemon=True, name=f"launch-{token}").start()
                for placeholder in burst:  # a burst: the nodes its queue needs, launched at once
                    threading.Thread(target=self._launch_unwatched, args=(_Launch(placeholder, ""),), daemon=True,
                                     name=placeholder).start()
                ctx.emit("node_launch", "no GPU node was free: launching one" if not burst
                         else f"no GPU node was free: launching {len(burst) + 1} for the jobs waiting")
                reason = "a node is being launched"
            else:
                reason = value
            ctx.sleep(self.config.poll_s)
        detail = f"; last health check: {self._last_unhealthy}" if self._last_unhealthy else ""
        raise NodeError(f"no GPU node became available within {self.config.acquire_timeout_s:.0f} s "
                        f"({reason}{detail})")

    def _launch(self, launch: _Launch) -> None:
        """Launch a node, wait for its health check, and make it ready for any job (a thread)."""
        try:
            self._launch_and_wait(launch)
        except EngineError as err:
            launch.error = err
        except Exception as err:  # a bug here must still end the waiting job, with a message
            log.exception("launching a node failed")
            launch.error = NodeError(f"launching a GPU node failed: {err}")
        finally:
            launch.finished.set()

    def _launch_and_wait(self, launch: _Launch) -> None:
        placeholder = launch.placeholder
        try:
            node = self.provider.launch()
        except Exception:
            self.metrics.gpu_launches.labels("failed").inc()
            self.store.forget(placeholder)
            raise
        self.metrics.gpu_launches.labels("ok").inc()
        self.store.launched(placeholder, node.name, workload=node.workload or "", expires=node.expires or 0,
                            now=time.time())
        deadline = time.monotonic() + self.config.ready_timeout_s
        while not self._healthy(node, fresh=True):
            if time.monotonic() > deadline:
                self.retire(node, force=True, reason="not_ready")
                raise NodeError(f"GPU node {node.name} was not ready within {self.config.ready_timeout_s:.0f} s")
            time.sleep(self.config.poll_s)
        now = time.time()
        self.store.ready(node.name, now=now, launched_for=launch.token, idle_since=launch.idle_since or now)
        log.info("node %s ready", node.name, extra={"node": node.name})

    def extend(self, lease: PoolLease) -> None:
        self.store.extend(lease.node.name, lease.token, until=time.time() + self.config.lease_s)

    def release(self, lease: PoolLease, *, gpu_seconds: float = 0.0) -> None:
        self.store.release(lease.node.name, lease.token, now=time.time(), gpu_seconds=gpu_seconds)

    def fail(self, lease: PoolLease) -> None:
        """The node failed a health check or a call: a launched one is stopped and replaced."""
        self._healthy_until.pop(lease.node.name, None)
        self.release(lease)
        if not self.provider.can_stop:
            self.store.mark_unhealthy(lease.node.name, until=time.time() + 10)
            return
        log.warning("node %s failed; stopping it", lease.node.name, extra={"node": lease.node.name})
        self.retire(lease.node, force=True, reason="failed")

    def _healthy(self, node: Node, *, fresh: bool = False) -> bool:
        if not fresh and self._healthy_until.get(node.name, 0) > time.monotonic():
            return True
        try:
            status = requests.get(node.url("health"), headers=node.headers(), timeout=5).status_code
            problem = "" if status == 200 else f"{node.name} answered HTTP {status}"
        except requests.RequestException as err:
            problem = f"{node.name} did not answer ({type(err).__name__})"
        if not problem:
            self._healthy_until[node.name] = time.monotonic() + 10
            return True
        self._last_unhealthy = problem
        return False

    # -- stopping ---------------------------------------------------------------

    def retire(self, node: Node, *, force: bool = False, reason: str = "idle") -> bool:
        """Stop a node that no job holds (or any node, when forced); returns whether it was stopped.

        From here on the node takes no jobs. A node the provider no longer knows counts as
        stopped; when the provider fails, the node stays out of service and the janitor tries
        again later, backing off (STOP_RETRY_S doubling up to STOP_RETRY_MAX_S).
        """
        if not self.provider.can_stop or not self.store.retire(node.name, force=force, now=time.time()):
            return False
        return self._stop(node, reason)

    def _stop(self, node: Node, reason: str) -> bool:
        record = self.store.record(node.name)
        launched_at = float(record.get("launched_at") or 0)
        try:
            self.provider.stop(node)
        except EngineError as err:
            failures = int(record.get("stop_failures") or 0) + 1
            delay = min(STOP_RETRY_MAX_S, STOP_RETRY_S * 2 ** (failures - 1))
            log.warning("stopping %s failed (%s); trying again in %.0f s", node.name, err, delay,
                        extra={"node": node.name})
            self.store.stop_failed(node.name, failures=failures, retry_at=time.time() + delay, reason=reason)
            return False
        self.store.stopped(node.name, launched_at=launched_at, now=time.time())
        self.metrics.gpu_stops.labels(reason).inc()
        if launched_at:
            self.metrics.gpu_billed.inc(max(0.0, time.time() - launched_at))
        return True

    def janitor(self, *, force: bool = False) -> None:
        """Housekeeping, by one worker at a time (a Redis lock)."""
        now = time.monotonic()
        if not force and now - self._last_janitor < self.config.janitor_every_s:
            return
        self._last_janitor = now
        if not self.provider.can_stop or not self.store.lock_janitor(ttl_s=30):
            return
        try:
            self._sweep(reconcile_now=force)
        finally:
            self.store.unlock_janitor()

    def _sweep(self, *, reconcile_now: bool = False) -> None:
        now = time.time()
        known: dict[str, str] = {}
        records = self.store.records()
        limits = self._idle_limits(records, now)
        for name, data in records.items():
            state, busy = data.get("state"), int(data.get("busy") or 0)
            if data.get("workload"):
                known[data["workload"]] = name
            idle_for = now - float(data.get("idle_since") or data.get("ready_at") or now)
            expires = float(data.get("expires") or 0)
            if state == "ready" and busy == 0 and idle_for >= limits.get(name, self.config.idle_timeout_s):
                log.info("node %s idle for %.0f s: stopping", name, idle_for, extra={"node": name})
                self.retire(self.node(name), reason="idle")
            elif state == "ready" and busy == 0 and expires and expires - now < (spent := self._spent_within(data)):
                # Spent: it could no longer take a job of the default max_time. It is replaced
                # at once by a node that keeps its idle clock, so the pool keeps the capacity
                # the idle timeout would have kept, and the next burst finds it warm.
                replace = spent > self.config.expiry_margin_s
                log.info("node %s expires in %.0f s: %s", name, expires - now,
                         "too soon for a default job, replacing it" if replace else "stopping it",
                         extra={"node": name})
                if self.retire(self.node(name), reason="expiry") and replace:
                    self._launch_replacement(now, idle_since=float(data.get("idle_since") or now))
            elif state == "starting" and data.get("workload") and self._healthy(self.node(name), fresh=True):
                # Its launcher may have died (a worker restart): the pool adopts the node.
                if self.store.ready(name, now=now, launched_for="", idle_since=now):
                    log.info("node %s ready (adopted by the janitor)", name, extra={"node": name})
            elif state == "stopping" and now >= self._stop_retry_at(data):
                self._stop(self.node(name), data.get("stop_reason") or "retry")
            elif state in ("launching", "starting") and now - float(data.get("launched_at") or now) > (
                    self.config.ready_timeout_s + 60):
                log.warning("launch of %s never finished: cleaning up", name)
                if data.get("workload"):
                    self.retire(self.node(name), force=True, reason="abandoned")
                else:
                    self.store.forget(name)
        self._reconcile(known, now, force=reconcile_now)

    @staticmethod
    def _stop_retry_at(data: dict[str, str]) -> float:
        """When to try stopping a node marked stopping again: as its last failure said, or, when no
        stop was recorded at all (the worker stopping it died), a while after it was marked."""
        if data.get("retry_stop_at"):
            return float(data["retry_stop_at"])
        return float(data.get("stopping_since") or 0) + STOP_STUCK_S

    def _spent_within(self, data: dict[str, str]) -> float:
        """How close to its expiry an idle node is stopped: when it could no longer take a job of
        the default max_time; or, for nodes launched too short-lived for such a job (a fresh one
        would be spent at once), only within the expiry margin."""
        enough = self.config.typical_job_s + self.config.expiry_margin_s
        lifetime = float(data.get("expires") or 0) - float(data.get("launched_at") or 0)
        return enough if lifetime >= enough else self.config.expiry_margin_s

    def _launch_replacement(self, now: float, *, idle_since: float) -> None:
        placeholder = f"launch-{secrets.token_hex(8)}"
        if not self.store.reserve(placeholder, now=now, max_nodes=self.config.max_nodes,
                                  max_node_seconds_per_hour=self.config.max_node_seconds_per_hour,
                                  new_node_min_s=self.config.new_node_min_s):
            return
        launch = _Launch(placeholder, "", idle_since=idle_since)
        threading.Thread(target=self._launch_unwatched, args=(launch,), daemon=True, name=placeholder).start()

    def _launch_unwatched(self, launch: _Launch) -> None:
        """A launch no job waits for (a replacement, a burst's extra nodes): its node joins the pool
        ready for any job."""
        self._launch(launch)
        if launch.error is not None:
            log.warning("launching a node no job waits for failed: %s", launch.error)

    def _idle_limits(self, records: dict[str, dict[str, str]], now: float) -> dict[str, float]:
        """How long each idle node may stay idle: the one that went idle last (the warm one)
        gets ``idle_timeout_s``; the others, surplus once a burst is over, ``surplus_idle_s``.
        While jobs wait for a node, none counts as surplus."""
        idle = sorted((float(d.get("idle_since") or d.get("ready_at") or now), name) for name, d in records.items()
                      if d.get("state") == "ready" and int(d.get("busy") or 0) == 0 and d.get("static") != "1")
        if len(idle) < 2 or self.config.surplus_idle_s >= self.config.idle_timeout_s:
            return {}
        if self.store.waiting(now):
            return {}
        return {name: self.config.surplus_idle_s for _, name in idle[:-1]}

    def _reconcile(self, known: dict[str, str], now: float, *, force: bool = False) -> None:
        """Every RECONCILE_EVERY_S, compare the pool with the provider's running workloads: a workload of
        ours the pool does not know is billed for nothing (reported, and stopped after a grace period);
        a pool node the provider no longer runs is gone (reported, and forgotten)."""
        if not force and now - self._last_reconcile < self.config.reconcile_every_s:
            return
        try:
            running = self.provider.list()
        except EngineError as err:  # unreachable, or the key was refused: try again on the next sweep
            log.warning("cannot list workloads: %s", err)
            return
        self._last_reconcile = now
        running_ids = {n.workload for n in running}
        unknown = [node for node in running if node.workload not in known]
        for node in unknown:
            seen = self.store.first_seen(str(node.workload), now=now, remember_s=self.config.unknown_grace_s * 4)
            log.warning("reconcile: workload %s on %s is running (billed) but not in the pool%s", node.workload,
                        node.name, "; stopping it" if now - seen >= self.config.unknown_grace_s else "",
                        extra={"node": node.name})
            if now - seen >= self.config.unknown_grace_s:
                try:
                    self.provider.stop(node)
                    self.metrics.gpu_stops.labels("unknown").inc()
                except EngineError as err:
                    log.warning("could not stop %s (%s); next sweep tries again", node.name, err)
        gone = 0
        for workload, name in known.items():
            data = self.store.record(name)
            if workload not in running_ids and data.get("state") == "ready":
                gone += 1
                log.warning("reconcile: node %s is in the pool but no longer running at the provider: "
                            "forgetting it", name, extra={"node": name})
                self.metrics.gpu_reconcile_gone.inc()
                self.store.stopped(name, launched_at=float(data.get("launched_at") or 0), now=now)
        self.store.reconciled(unknown=len(unknown), gone=gone, now=now)
