"""The shared GPU pool's state in Redis, beside :class:`JobStore` and :class:`Outbox`.

:class:`PoolStore` is the only code that touches the pool's keys. Every key is
built from one prefix (:class:`~chalicelib.store.keys.PoolKeys`), and the same prefix
is passed to the Lua scripts (``chalicelib/store/lua/pool_*.lua``), which build their
keys from it in ``_pool.lua``. The worker's :class:`~worker.gpu.pool.GpuPool`
decides; this class records. The API reads node views from it for ``/nodes``,
``/health`` and the metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from chalicelib.errors import StoreUnavailable
from chalicelib.store.keys import PoolKeys
from chalicelib.store.redisio import RedisGuard, Scripts, text

STATES = ("launching", "starting", "ready", "stopping")  # see chalicelib/store/lua/_pool.lua

_guard = RedisGuard(StoreUnavailable, "the GPU pool (Redis)")


@dataclass(frozen=True)
class AcquireRequest:
    """What ``pool_acquire.lua`` needs to place one job (see its header)."""

    now: float
    lease_until: float
    job_end: float
    jobs_per_node: int
    max_nodes: int
    queue_depth: int
    scale_up_queue_per_node: float
    token: str
    may_launch: bool
    waited_s: float
    scale_up_after_s: float
    placement: str
    max_node_seconds_per_hour: float = 0.0  # 0: no guard
    new_node_min_s: float = 0.0  # the least a launched node bills (launch time + idle timeout)


def node_view(name: str, data: dict[str, str]) -> dict[str, Any]:
    def num(field: str) -> float | None:
        value = data.get(field)
        return float(value) if value not in (None, "") else None
    return {"node": name, "state": data.get("state"), "busy": int(data.get("busy") or 0),
            "jobs_run": int(data.get("jobs_run") or 0), "gpu_seconds": round(num("gpu_seconds") or 0, 3),
            "idle_since": num("idle_since"), "ready_at": num("ready_at"), "launched_at": num("launched_at"),
            "expires": num("expires") or None, "static": data.get("static") == "1",
            "workload": data.get("workload") or None}


def count_by_state(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """How many nodes are in each state (every known state present, 0 when none)."""
    counts = dict.fromkeys(STATES, 0)
    for node in nodes:
        state = str(node["state"] or "unknown")
        counts[state] = counts.get(state, 0) + 1
    return counts


class PoolStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "pool:") -> None:
        self.redis = client
        self.keys = PoolKeys(prefix)
        self._scripts = Scripts(client)

    def _script(self, name: str, *args: Any) -> Any:
        return _guard(lambda: self._scripts(name, args=[self.keys.prefix, *args]))

    # -- reading ----------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(text(n) for n in _guard(lambda: self.redis.smembers(self.keys.nodes)))

    def record(self, name: str) -> dict[str, str]:
        return cast("dict[str, str]", _guard(lambda: self.redis.hgetall(self.keys.node(name))))

    def records(self) -> dict[str, dict[str, str]]:
        """Every node's record, by name (records that vanished meanwhile left out)."""
        names = self.names()

        def run() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self.keys.node(name))
            return pipe.execute()
        return {name: data for name, data in zip(names, _guard(run), strict=True) if data}

    def nodes(self) -> list[dict[str, Any]]:
        """Every node as the API shows it (``/nodes``)."""
        return [node_view(name, data) for name, data in self.records().items()]

    def waiting(self, now: float) -> int:
        """Jobs waiting for a node now."""
        return int(_guard(lambda: self.redis.zcount(self.keys.waiting, now, "+inf")))

    # -- changing (each one step) ------------------------------------------------

    def register_static(self, names: list[str]) -> None:
        """Permanent nodes: ready, never launched or stopped; counts kept across restarts."""
        def run() -> None:
            pipe = self.redis.pipeline()
            for name in names:
                key = self.keys.node(name)
                pipe.hsetnx(key, "busy", 0)
                pipe.hsetnx(key, "jobs_run", 0)
                pipe.hsetnx(key, "gpu_seconds", 0)
                pipe.hset(key, mapping={"state": "ready", "static": 1, "expires": 0})
                pipe.sadd(self.keys.nodes, name)
            pipe.execute()
        _guard(run)

    def acquire(self, request: AcquireRequest, placeholder: str) -> tuple[str, str, list[str]]:
        """``("node", name, [])``, ``("launch", placeholder, [more placeholders of a burst])`` or
        ``("wait", reason, [])``."""
        r = request
        reply = self._script("pool_acquire", r.now, r.lease_until, r.job_end, r.jobs_per_node, r.max_nodes,
                             r.queue_depth, r.scale_up_queue_per_node, r.token, placeholder,
                             "1" if r.may_launch else "0", r.waited_s, r.scale_up_after_s, r.placement,
                             r.max_node_seconds_per_hour, r.new_node_min_s)
        return text(reply[0]), text(reply[1]), [text(more) for more in reply[2:]]

    def launched(self, placeholder: str, name: str, *, workload: str, expires: float, now: float) -> None:
        self._script("pool_launched", placeholder, name, workload, expires, now)

    def ready(self, name: str, *, now: float, launched_for: str, idle_since: float) -> bool:
        return bool(int(self._script("pool_ready", name, now, launched_for, idle_since)))

    def reserve(self, placeholder: str, *, now: float, max_nodes: int, max_node_seconds_per_hour: float = 0.0,
                new_node_min_s: float = 0.0) -> bool:
        return bool(int(self._script("pool_reserve", placeholder, now, max_nodes, max_node_seconds_per_hour,
                                     new_node_min_s)))

    def release(self, name: str, token: str, *, now: float, gpu_seconds: float) -> bool:
        return bool(int(self._script("pool_release", name, token, now, round(gpu_seconds, 3))))

    def retire(self, name: str, *, force: bool, now: float) -> bool:
        """Mark a node stopping (only when no job holds it, unless forced); True when it may be stopped."""
        return bool(int(self._script("pool_retire", name, "1" if force else "0", now)))

    def stop_failed(self, name: str, *, failures: int, retry_at: float, reason: str) -> None:
        """The provider could not stop the node: it stays stopping (no jobs), to be tried again at ``retry_at``."""
        _guard(lambda: self.redis.hset(self.keys.node(name), mapping={
            "stop_failures": failures, "retry_stop_at": retry_at, "stop_reason": reason}))

    def stop_waiting(self, token: str) -> None:
        """The job that waited under ``token`` has a node, or gave up."""
        _guard(lambda: self.redis.zrem(self.keys.waiting, token))

    def extend(self, name: str, token: str, *, until: float) -> None:
        _guard(lambda: self.redis.zadd(self.keys.leases, {f"{name}|{token}": until}, xx=True))

    def mark_unhealthy(self, name: str, *, until: float) -> None:
        _guard(lambda: self.redis.hset(self.keys.node(name), "unhealthy_until", until))

    def stopped(self, name: str, *, launched_at: float, now: float) -> None:
        """A node was stopped: it leaves the pool, and its launch-to-stop time joins the billed total and
        the last hours' record (MAX_NODE_SECONDS_PER_HOUR, /nodes), in one step."""
        def run() -> None:
            pipe = self.redis.pipeline()
            pipe.delete(self.keys.node(name))
            pipe.srem(self.keys.nodes, name)
            if launched_at:
                pipe.incrbyfloat(self.keys.billed, max(0.0, now - launched_at))
                pipe.zadd(self.keys.stopped, {f"{name}|{launched_at}|{now}": now})
                pipe.zremrangebyscore(self.keys.stopped, "-inf", now - 7200)
            pipe.execute()
        _guard(run)

    def billed_total(self) -> float:
        """Launch-to-stop seconds of every node stopped so far."""
        return float(_guard(lambda: self.redis.get(self.keys.billed)) or 0)

    def billed_since(self, since: float, now: float) -> float:
        """Node-seconds billed from ``since`` (at most 2 h back) to ``now``: live nodes and stopped ones."""
        total = 0.0
        for data in self.records().values():
            launched = float(data.get("launched_at") or 0)
            if launched and data.get("static") != "1":
                total += max(0.0, now - max(launched, since))
        entries = _guard(lambda: self.redis.zrangebyscore(self.keys.stopped, since, "+inf"))
        for entry in entries:
            _, launched_text, stopped_text = text(entry).rsplit("|", 2)
            total += max(0.0, float(stopped_text) - max(float(launched_text), since))
        return total

    def held_at(self) -> float:
        """When MAX_NODE_SECONDS_PER_HOUR last held back a launch (0: never)."""
        return float(_guard(lambda: self.redis.get(self.keys.held)) or 0)

    def reconciled(self, *, unknown: int, gone: int, now: float) -> None:
        """The janitor's last comparison with the provider: workloads billed but unknown to the pool,
        nodes the pool knew that the provider no longer runs."""
        _guard(lambda: self.redis.hset(self.keys.reconciled, mapping={"unknown": unknown, "gone": gone, "at": now}))

    def reconcile_state(self) -> dict[str, float]:
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(self.keys.reconciled)))
        return {k: float(data.get(k) or 0) for k in ("unknown", "gone", "at")}

    def forget(self, name: str) -> None:
        def run() -> None:
            pipe = self.redis.pipeline()
            pipe.delete(self.keys.node(name))
            pipe.srem(self.keys.nodes, name)
            pipe.execute()
        _guard(run)

    def first_seen(self, workload: str, *, now: float, remember_s: float) -> float:
        """When the janitor first saw this unknown workload (now, the first time)."""
        key = self.keys.seen(workload)

        def run() -> float:
            pipe = self.redis.pipeline()
            pipe.set(key, now, nx=True)
            pipe.expire(key, int(remember_s))
            pipe.get(key)
            return float(pipe.execute()[2] or now)
        return _guard(run)

    # -- the janitor's lock --------------------------------------------------------

    def lock_janitor(self, *, ttl_s: float) -> bool:
        return bool(_guard(lambda: self.redis.set(self.keys.janitor, "1", nx=True, px=int(ttl_s * 1000))))

    def unlock_janitor(self) -> None:
        _guard(lambda: self.redis.delete(self.keys.janitor))
