"""Builds the worker's parts from settings."""
from __future__ import annotations

import threading
import uuid

from chalicelib.auth import KeyStore
from chalicelib.metrics import ClusterCollector, Metrics
from chalicelib.outbox import Outbox
from chalicelib.queues import make_queue
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStorage
from chalicelib.store import JobStore
from worker.engines import build_engines
from worker.nodes import build_pool
from worker.notifier import Notifier, NotifierConfig
from worker.runner import Runner, RunnerConfig


def _store(settings: Settings) -> JobStore:
    return JobStore.from_url(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 2.0),
                             result_ttl_s=settings.result_ttl_s)


def build_runners(settings: Settings, shutdown: threading.Event, metrics: Metrics | None = None) -> list[Runner]:
    """One runner per concurrent slot, each with its own connections."""
    config = RunnerConfig(lease_s=settings.lease_s, heartbeat_s=min(settings.lease_s / 3, 2.0),
                          shutdown_grace_s=settings.worker_shutdown_grace_s)
    engines = build_engines(settings)
    prefix = f"w-{uuid.uuid4().hex[:6]}"
    runners = []
    for slot in range(max(1, settings.worker_concurrency)):
        store = _store(settings)
        pool = build_pool(settings, store.redis, metrics) if any(e.needs_node for e in engines.values()) else None
        runners.append(Runner(store=store, queue=make_queue(settings, create=settings.create_missing),
                              engines=engines, storage_factory=lambda: ObjectStorage.from_settings(settings),
                              config=config, worker_id=f"{prefix}-{slot}", shutdown=shutdown, pool=pool,
                              metrics=metrics))
    return runners


def build_notifier(settings: Settings, metrics: Metrics | None = None) -> Notifier:
    store = _store(settings)
    config = NotifierConfig(secrets=tuple((settings.webhook_secret or "").split()), retries=settings.webhook_retries,
                            retry_delay_s=settings.webhook_retry_delay_s, timeout_s=settings.webhook_timeout_s,
                            allow_private=settings.allow_private_urls, allow_hosts=settings.url_allow_hosts,
                            concurrency=settings.webhook_concurrency)
    return Notifier(outbox=Outbox(store.redis, record_ttl_s=settings.result_ttl_s), store=store,
                    storage=ObjectStorage.from_settings(settings), config=config,
                    keys=KeyStore(store.redis, cache_s=settings.auth_cache_s), metrics=metrics)


def build_metrics(settings: Settings) -> Metrics:
    """The worker's metrics, with the cluster's state read from Redis at each scrape."""
    metrics = Metrics()
    store = _store(settings)
    queue = make_queue(settings)
    metrics.add_collector(ClusterCollector(
        store.redis, queue_depth=queue.depth, live_within_s=settings.worker_heartbeat_s * 3,
        idle_timeout_s=settings.gpu_idle_timeout_s))
    return metrics
