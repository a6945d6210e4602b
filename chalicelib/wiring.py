"""Builds the API's backends from settings, once, when first needed."""
from __future__ import annotations

import threading

import redis

from chalicelib import jobspec
from chalicelib.auth import KeyStore
from chalicelib.filelinks import FileLinks
from chalicelib.metrics import ClusterCollector, Metrics
from chalicelib.outbox import Outbox
from chalicelib.poolstore import PoolStore
from chalicelib.queues import make_queue
from chalicelib.service import RenderService
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStorage
from chalicelib.store import JobStore
from chalicelib.uploads import UploadStore
from chalicelib.voices import VoiceStore
from chalicelib.waiters import JobWatcher

_lock = threading.Lock()
_service: RenderService | None = None


def build_service(settings: Settings) -> RenderService:
    store = JobStore.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s,
                              result_ttl_s=settings.result_ttl_s, idempotency_ttl_s=settings.idempotency_ttl_s,
                              gpu_price_per_hour=settings.price_per_hour())
    queue = make_queue(settings, create=settings.create_missing)
    outbox = Outbox(store.redis, record_ttl_s=settings.result_ttl_s)
    pool = PoolStore(store.redis)
    metrics = Metrics(multiproc_dir=settings.prometheus_multiproc_dir)
    metrics.add_collector(ClusterCollector(store=store, outbox=outbox, pool=pool, queue_depth=queue.depth,
                                           live_within_s=settings.worker_heartbeat_s * 3,
                                           idle_timeout_s=settings.gpu_idle_timeout_s,
        price_per_hour=settings.price_per_hour(), max_node_seconds_per_hour=settings.max_node_seconds_per_hour))
    return RenderService(settings=settings, catalog=jobspec.load(settings.job_plugins), store=store, queue=queue,
                         outbox=outbox, pool=pool, keys=KeyStore(store.redis, cache_s=settings.auth_cache_s),
                         watcher=JobWatcher(lambda: redis.Redis.from_url(
                             settings.redis_url, socket_connect_timeout=settings.redis_timeout_s,
                             socket_keepalive=True, health_check_interval=30)),
                         storage_factory=lambda: ObjectStorage.from_settings(settings), metrics=metrics,
                         uploads=build_uploads(settings, store.redis), voices=VoiceStore(store.redis),
                         links=build_links(settings, store.redis))


def build_uploads(settings: Settings, client: redis.Redis) -> UploadStore:
    return UploadStore(client, ttl_s=settings.upload_ttl_s, per_key_per_day=settings.uploads_per_key_per_day)


def build_links(settings: Settings, client: redis.Redis) -> FileLinks:
    return FileLinks(client, secret=settings.file_link_secret, base_url=settings.public_api_url,
                     ttl_s=settings.result_url_ttl_s)


def get_service() -> RenderService:
    """The process's service, built from the environment on first use (never at import)."""
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_service(Settings.from_env())
    return _service
