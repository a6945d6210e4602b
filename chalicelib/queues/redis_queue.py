"""A reliable queue on Redis: Lua-leased ids, reclaimed when a lease expires.

``receive`` runs one script that leases the next id; when the queue is empty it
blocks on a wake list (one token per enqueue) so pickup takes a round trip, not
a polling interval.
"""
from __future__ import annotations

import secrets
import time
from functools import partial
from typing import Any

import redis

from chalicelib.errors import QueueUnavailable
from chalicelib.jobs.models import Lease
from chalicelib.queues.base import JobQueue
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard, Scripts

WAKE_CAP = 1000
RECLAIM_BATCH = 100
MAX_BLOCK_S = 1.0  # also bounds how late an expired lease is noticed by an idle worker


_guard = RedisGuard(QueueUnavailable, "the Redis queue")


class RedisQueue(JobQueue):
    backend = "redis"

    def __init__(self, client: redis.Redis, *, name: str = "jobs", lease_s: float = 60.0) -> None:
        super().__init__(lease_s=lease_s)
        self.redis = client
        self.name = name
        self._keys = [keys.queue(name), keys.queue_leases(name), keys.queue_tokens(name), keys.queue_delayed(name)]
        self._wake = keys.queue_wake(name)
        self._scripts = Scripts(client)

    @classmethod
    def from_url(cls, url: str, *, name: str, lease_s: float, timeout_s: float = 0.5) -> RedisQueue:
        # Blocking reads wait up to MAX_BLOCK_S, so the socket timeout must exceed it.
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=MAX_BLOCK_S + 2,
                                      socket_connect_timeout=timeout_s)
        return cls(client, name=name, lease_s=lease_s)

    def colocated_keys(self, client: Any) -> tuple[str, str, int] | None:
        mine = self.redis.connection_pool.connection_kwargs
        theirs = client.connection_pool.connection_kwargs
        same = all(mine.get(k) == theirs.get(k) for k in ("host", "port", "db", "path", "username"))
        return (keys.queue(self.name), self._wake, WAKE_CAP) if same else None

    def enqueue(self, job_id: str, delay_s: float = 0) -> None:
        due_ms = int((time.time() + delay_s) * 1000) if delay_s > 0 else 0
        _guard(lambda: self._scripts("queue_enqueue", [keys.queue(self.name), keys.queue_delayed(self.name),
                                                        self._wake], [job_id, due_ms, WAKE_CAP]))

    def receive(self, wait_s: float) -> Lease | None:
        deadline = time.monotonic() + wait_s
        while True:
            args = [int(time.time() * 1000), int(self.lease_s * 1000), secrets.token_hex(8), RECLAIM_BATCH]
            reply: list[Any] = _guard(partial(self._scripts, "queue_receive", self._keys, args))
            if reply[0]:
                return Lease(job_id=reply[0], token=reply[1])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            block = min(remaining, MAX_BLOCK_S)
            next_due_ms = int(reply[2])
            if next_due_ms >= 0:
                block = min(block, max(0.01, next_due_ms / 1000 - time.time()))
            _guard(partial(self.redis.brpop, [self._wake], timeout=block))

    def _settle_call(self, verb: str, lease: Lease, arg: int) -> bool:
        return bool(_guard(lambda: self._scripts("queue_settle", self._keys, [verb, lease.job_id, lease.token, arg])))

    def ack(self, lease: Lease) -> bool:
        return self._settle_call("ack", lease, 0)

    def nack(self, lease: Lease, delay_s: float = 0) -> bool:
        due_ms = int((time.time() + delay_s) * 1000) if delay_s > 0 else 0
        return self._settle_call("nack", lease, due_ms)

    def extend(self, lease: Lease, seconds: float) -> bool:
        return self._settle_call("extend", lease, int((time.time() + seconds) * 1000))

    def depth(self) -> int:
        def run() -> int:
            pipe = self.redis.pipeline(transaction=False)
            pipe.llen(keys.queue(self.name))
            pipe.zcard(keys.queue_delayed(self.name))
            ready, delayed = pipe.execute()
            return int(ready) + int(delayed)
        return _guard(run)
