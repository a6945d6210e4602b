"""The webhook notifier: delivers the outbox, never holding up GPU work.

Runs beside the runner (a thread of ``python -m worker``) or on its own
(``python -m worker.notifier``: ``__main__.py``). Deliveries are claimed from Redis fairly (at
most WEBHOOK_MAX_PER_HOST in flight to one receiving host and WEBHOOK_MAX_PER_KEY for one key's
jobs, across every notifier), sent from a bounded thread pool with a timeout, no redirects
followed, success on 2xx only; failures are retried on the configured schedule (default: 5 retries 5 s apart),
``Retry-After`` honoured on 429/503, and 410 stops. The connection goes to the
address the URL guard vetted at that moment, so a second DNS answer cannot
redirect it inside the network. Every attempt is recorded.
"""
from __future__ import annotations

import email.utils
import http.client
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import NotFound, RenderError, Unavailable
from chalicelib.files.storage import ObjectStorage
from chalicelib.ops.metrics import Metrics
from chalicelib.security.auth import KeyStore
from chalicelib.security.filelinks import FileLinks
from chalicelib.security.safehttp import post
from chalicelib.security.urlpolicy import UrlRefused, vetted_addresses
from chalicelib.security.webhooks import USER_AGENT, encode, payload, sign
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Delivery, Outbox

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 3600.0
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's longest


@dataclass(frozen=True)
class NotifierConfig:
    secrets: tuple[str, ...]  # WEBHOOK_SECRET: signs jobs submitted without a key
    retries: int
    retry_delay_s: float
    timeout_s: float
    allow_private: bool
    allow_hosts: frozenset[str]
    concurrency: int
    max_per_host: int
    max_per_key: int
    result_url_ttl_s: int
    poll_s: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifierConfig:
        return cls(secrets=tuple((settings.webhook_secret or "").split()), retries=settings.webhook_retries,
                   retry_delay_s=settings.webhook_retry_delay_s, timeout_s=settings.webhook_timeout_s,
                   allow_private=settings.allow_private_urls, allow_hosts=settings.url_allow_hosts,
                   concurrency=settings.webhook_concurrency, max_per_host=settings.webhook_max_per_host,
                   max_per_key=settings.webhook_max_per_key, result_url_ttl_s=settings.result_url_ttl_s)


def retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, when.timestamp() - time.time()))


class Notifier:
    def __init__(self, *, outbox: Outbox, store: JobStore, storage: ObjectStorage | None,
                 config: NotifierConfig, keys: KeyStore | None = None, metrics: Metrics | None = None,
                 links: FileLinks | None = None) -> None:
        self.outbox = outbox
        self.links = links
        self.metrics = metrics or Metrics()
        self.keys = keys
        self.store = store
        self.storage = storage
        self.config = config
        self._inflight = 0
        self._slot_freed = threading.Condition()

    def run_forever(self, stop: threading.Event) -> None:
        if not self.config.secrets:
            log.warning("WEBHOOK_SECRET is not set: webhooks are sent unsigned")
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="webhook") as pool:
            while not stop.is_set():
                with self._slot_freed:
                    # All slots busy (slow receivers): wait for one to free, not for a fixed tick.
                    self._slot_freed.wait_for(lambda: self._inflight < self.config.concurrency, timeout=0.5)
                    free = self.config.concurrency - self._inflight
                if free <= 0:
                    continue
                try:
                    ids = self.outbox.claim(limit=free, claim_s=2 * self.config.timeout_s,
                                            per_host=self.config.max_per_host, per_owner=self.config.max_per_key)
                except Unavailable as err:
                    log.warning("notifier: %s", err)
                    stop.wait(1.0)
                    continue
                with self._slot_freed:
                    self._inflight += len(ids)
                for delivery_id in ids:
                    pool.submit(self._deliver_counted, delivery_id)
                if not ids:
                    stop.wait(self.config.poll_s)

    def _deliver_counted(self, delivery_id: str) -> None:
        try:
            self.deliver(delivery_id)
        except Exception:  # one bad delivery must not end the pool's worker
            log.exception("webhook delivery crashed", extra={"delivery_id": delivery_id})
        finally:
            with self._slot_freed:
                self._inflight -= 1
                self._slot_freed.notify()

    def deliver(self, delivery_id: str) -> str:
        """One attempt; returns the delivery's new state."""
        delivery = self.outbox.get(delivery_id)
        if delivery is None or delivery.state != "pending":
            return delivery.state if delivery else "missing"
        extra = {"delivery_id": delivery_id, "job_id": delivery.job_id}
        body = delivery.body
        if body is None:
            try:
                job = self.store.get(delivery.job_id)
                body = encode(payload(job, delivery.event, self._presign))
            except NotFound:
                return self._settle(delivery, {"error": "the job record has expired"}, "failed", extra)
            self.outbox.keep_body(delivery_id, body)
        try:
            target = vetted_addresses(delivery.url, allow_private=self.config.allow_private,
                                      allow_hosts=self.config.allow_hosts)
        except UrlRefused as err:
            return self._settle(delivery, {"error": f"refused: {err}"}, "blocked", extra)
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": delivery_id,
                   "webhook-timestamp": str(timestamp)}
        secrets = self._secrets_for(delivery.owner)
        if secrets:
            headers["webhook-signature"] = sign(secrets, delivery_id, timestamp, body)
        started = time.monotonic()
        attempt: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="milliseconds")}
        wait: float | None = None
        try:
            status, retry_after = post(target, headers, body, self.config.timeout_s)
            attempt["status_code"] = status
            if status in (429, 503):
                wait = retry_after_s(retry_after)
        except (OSError, http.client.HTTPException) as err:
            status = 0
            attempt["error"] = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        attempt["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        if 200 <= status < 300:
            return self._settle(delivery, attempt, "delivered", extra)
        if status == 410:
            return self._settle(delivery, attempt, "gone", extra)
        if delivery.best_effort or delivery.series_attempts + 1 > self.config.retries:
            return self._settle(delivery, attempt, "failed", extra)
        delay = self.config.retry_delay_s if wait is None else wait
        return self._settle(delivery, attempt, "pending", extra, next_due_s=delay)

    def _settle(self, delivery: Delivery, attempt: dict[str, Any], state: str, extra: dict[str, str],
                next_due_s: float = 0) -> str:
        count = self.outbox.settle(delivery, attempt=attempt, state=state, next_due_s=next_due_s)
        self.metrics.webhooks.labels("retrying" if state == "pending" else state).inc()
        outcome = attempt.get("status_code", attempt.get("error"))
        log.info("webhook attempt %d: %s -> %s", count, outcome, state, extra=extra)
        return state

    def _secrets_for(self, owner: str) -> list[str]:
        """The owner's API key signs its webhooks (with the previous secret too, for a while after a
        rotation); jobs without a key of their own use WEBHOOK_SECRET. The key is read for each
        delivery, so a rotation is in force at once."""
        if self.keys is None or not owner.startswith("key_"):
            return list(self.config.secrets)
        try:
            signing = self.keys.get(owner).signing_secrets(time.time())
        except NotFound:
            signing = []
        return signing or list(self.config.secrets)

    def _presign(self, key: str) -> str:
        """A result URL that lasts RESULT_URL_TTL_S: a link to the API (PUBLIC_API_URL), signed by the
        service, when there is one; else a URL presigned for as long as S3 allows (7 days), which dies
        sooner if the worker's credentials do."""
        lasting = self.links.link(key) if self.links else None
        if lasting:
            return lasting
        if self.storage is None:
            raise RenderError("object storage is not configured; cannot sign a result URL")
        return self.storage.presign(key, ttl_s=min(self.config.result_url_ttl_s, MAX_PRESIGN_S))
