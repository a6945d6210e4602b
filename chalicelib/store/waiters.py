"""Waiting for a job to change, woken by Redis pub/sub: the API's side of wait mode.

Every step that changes a job (the Lua scripts: created, started, an event added,
finished) publishes on the job's channel. A process keeps one pub/sub connection,
read by one listener thread (a greenlet under gevent), subscribed to the channels
of the jobs someone in this process waits on; a publish wakes exactly those
waiters, which then read the job again. Nothing polls: a waiting client costs one
parked greenlet and a subscription.

A waiter subscribes, waits for Redis to confirm the subscription, and only then
reads the job: a change made after that read is always published to it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from chalicelib.store import keys

log = logging.getLogger(__name__)
T = TypeVar("T")
CONFIRM_TIMEOUT_S = 2.0


class _Channel:
    def __init__(self) -> None:
        self.waiters: set[threading.Event] = set()
        self.confirmed = threading.Event()


class JobWatcher:
    """One per process: ``wait(job_id, seconds, check)`` returns ``check()``'s first non-None answer."""

    def __init__(self, connect: Callable[[], redis.Redis]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._pubsub: Any = None
        self._listener: threading.Thread | None = None

    def wait(self, job_id: str, seconds: float, check: Callable[[], T | None]) -> T | None:
        """Call ``check`` now and after every change to the job, until it answers (not None) or
        ``seconds`` pass (None then). ``check`` reads the store; it is called at least once."""
        deadline = time.monotonic() + seconds
        channel = keys.job_channel(job_id)
        woken = threading.Event()
        entry = self._join(channel, woken)
        try:
            entry.confirmed.wait(min(CONFIRM_TIMEOUT_S, seconds))
            while True:
                found = check()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not entry.confirmed.is_set():
                    return None  # not subscribed (Redis unreachable): answer now rather than wait blind
                woken.wait(remaining)
                woken.clear()
        finally:
            self._leave(channel, woken)

    def _join(self, channel: str, woken: threading.Event) -> _Channel:
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._channels[channel] = _Channel()
                self._start()
                try:
                    self._pubsub.subscribe(channel)
                except redis.RedisError as err:
                    log.warning("cannot subscribe to %s: %s", channel, err)
            entry.waiters.add(woken)
            return entry

    def _leave(self, channel: str, woken: threading.Event) -> None:
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                return
            entry.waiters.discard(woken)
            if not entry.waiters:
                del self._channels[channel]
                try:
                    self._pubsub.unsubscribe(channel)
                except redis.RedisError:
                    pass  # the listener reconnects with only the channels still wanted

    def _start(self) -> None:
        """(Under the lock.) The pub/sub connection and its listener, made on first use."""
        if self._pubsub is None:
            self._pubsub = self._new_pubsub()
        if self._listener is None or not self._listener.is_alive():
            self._listener = threading.Thread(target=self._listen, name="job-watcher", daemon=True)
            self._listener.start()

    def _new_pubsub(self) -> Any:
        return self._connect().pubsub(ignore_subscribe_messages=False)

    def _listen(self) -> None:
        while True:
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except (redis.RedisError, OSError, ValueError) as err:
                log.warning("job watcher lost Redis (%s); reconnecting", err)
                self._reconnect()
                continue
            if message is None:
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            with self._lock:
                entry = self._channels.get(channel)
                if entry is None:
                    continue
                if message["type"] == "subscribe":
                    entry.confirmed.set()
                elif message["type"] == "message":
                    for woken in entry.waiters:
                        woken.set()

    def _reconnect(self) -> None:
        """A new connection subscribed to every channel still waited on; every waiter re-reads its job."""
        time.sleep(0.5)
        with self._lock:
            try:
                self._pubsub.close()
            except redis.RedisError:
                pass
            self._pubsub = self._new_pubsub()
            for channel, entry in self._channels.items():
                entry.confirmed.clear()
                for woken in entry.waiters:
                    woken.set()
                try:
                    self._pubsub.subscribe(channel)
                except redis.RedisError:
                    pass
