"""The webhook outbox in Redis: deliveries written by the job scripts, claimed,
settled and listed here. Each delivery is ``webhook:<job id>-<event>``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import redis

from chalicelib.errors import StoreUnavailable
from chalicelib.jobs.models import now_s
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard, Scripts

_guard = RedisGuard(StoreUnavailable, "the webhook outbox (Redis)")


@dataclass
class Delivery:
    id: str
    job_id: str
    event: str
    url: str
    state: str
    attempts: int
    series_start: int
    body: bytes | None
    owner: str = ""
    best_effort: bool = False  # progress webhooks: sent once, never retried

    @property
    def series_attempts(self) -> int:
        """Attempts in the current series (a redelivery starts a new one)."""
        return self.attempts - self.series_start


class Outbox:
    def __init__(self, client: redis.Redis, *, record_ttl_s: int) -> None:
        self.redis = client
        self.record_ttl_s = record_ttl_s
        self._scripts = Scripts(client)

    def claim(self, *, limit: int, claim_s: float, per_host: int = 1_000_000, per_owner: int = 1_000_000,
              scan: int = 200, defer_s: float = 0.5) -> list[str]:
        """Due deliveries for this notifier, at most ``limit``, keeping at most ``per_host`` in flight
        to one receiving host and ``per_owner`` for one key's jobs, across all notifiers."""
        now = now_s()
        ids = _guard(lambda: self._scripts("webhook_claim", [keys.WEBHOOK_DUE], [
            now, now + claim_s, limit, per_host, per_owner, scan, keys.WEBHOOK_PREFIX, defer_s,
            keys.WEBHOOK_INFLIGHT]))
        return [str(x) for x in ids]

    def get(self, delivery_id: str) -> Delivery | None:
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(keys.webhook(delivery_id))))
        if not data:
            return None
        body = data.get("body")
        return Delivery(id=delivery_id, job_id=data["job_id"], event=data["event"], url=data["url"],
                        state=data.get("state", "pending"), attempts=int(data.get("attempts") or 0),
                        series_start=int(data.get("series_start") or 0),
                        body=body.encode() if body else None, owner=data.get("owner", ""),
                        best_effort=data.get("best_effort") == "1")

    def keep_body(self, delivery_id: str, body: bytes) -> None:
        """The first attempt's body is sent again on every retry."""
        _guard(lambda: self.redis.hsetnx(keys.webhook(delivery_id), "body", body.decode()))

    def settle(self, delivery: Delivery, *, attempt: dict[str, Any], state: str, next_due_s: float = 0) -> int:
        return int(_guard(lambda: self._scripts(
            "webhook_settle", keys=[keys.webhook(delivery.id), keys.webhook_attempts(delivery.id), keys.WEBHOOK_DUE,
                  keys.job(delivery.job_id)],
            args=[delivery.id, json.dumps(attempt, separators=(",", ":")), state, now_s() + next_due_s,
                  self.record_ttl_s, keys.WEBHOOK_INFLIGHT])))

    def log(self, job_id: str) -> list[dict[str, Any]]:
        """Every delivery of a job with every attempt (time, status code or error, duration)."""
        out = []
        for event in ("started", "completed"):  # progress webhooks are best effort and not logged
            delivery = self.get(f"{job_id}-{event}")
            if delivery is None:
                continue
            raw = _guard(lambda d=delivery: self.redis.lrange(keys.webhook_attempts(d.id), 0, -1))  # type: ignore[misc]
            out.append({"id": delivery.id, "event": delivery.event, "url": delivery.url, "state": delivery.state,
                        "attempts": [json.loads(a) for a in raw]})
        return out

    def due(self, now: float) -> int:
        """Deliveries due now or overdue."""
        return int(_guard(lambda: self.redis.zcount(keys.WEBHOOK_DUE, "-inf", now)))

    def redeliver(self, job_id: str) -> bool:
        delivery_id = f"{job_id}-completed"
        return bool(_guard(lambda: self._scripts(
            "webhook_redeliver", keys=[keys.webhook(delivery_id), keys.WEBHOOK_DUE, keys.job(job_id)],
            args=[delivery_id, now_s()])))
