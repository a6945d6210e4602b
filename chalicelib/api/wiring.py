"""Builds the API's backends from settings, once, when first needed."""
from __future__ import annotations

import functools
import threading

import redis

from chalicelib.api.accounts import Accounts
from chalicelib.api.callers import Callers
from chalicelib.api.cluster import Cluster
from chalicelib.api.files import Files
from chalicelib.api.jobs import Jobs
from chalicelib.api.service import RenderService
from chalicelib.files.storage import ObjectStorage
from chalicelib.files.uploads import UploadStore
from chalicelib.files.voices import VoiceStore
from chalicelib.jobs import spec as jobspec
from chalicelib.ops.metrics import ClusterCollector, Metrics
from chalicelib.queues import make_queue
from chalicelib.security.auth import KeyStore
from chalicelib.security.filelinks import FileLinks
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Outbox
from chalicelib.store.pool import PoolStore
from chalicelib.store.waiters import JobWatcher

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
    storage = functools.lru_cache(maxsize=1)(lambda: ObjectStorage.from_settings(settings))
    keys = KeyStore(store.redis, cache_s=settings.auth_cache_s)
    files = Files(settings=settings, uploads=build_uploads(settings, store.redis), voices=VoiceStore(store.redis),
                  links=build_links(settings, store.redis), storage=storage)
    catalog = jobspec.load(settings.job_plugins)
    watcher = JobWatcher(lambda: redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=settings.redis_timeout_s, socket_keepalive=True,
        health_check_interval=30))
    return RenderService(
        settings=settings, catalog=catalog, metrics=metrics, storage_factory=storage, files=files,
        callers=Callers(settings=settings, keys=keys, store=store),
        jobs=Jobs(settings=settings, catalog=catalog, store=store, queue=queue, outbox=outbox, files=files,
                  storage=storage, watcher=watcher, metrics=metrics),
        accounts=Accounts(settings=settings, keys=keys, store=store),
        cluster=Cluster(settings=settings, store=store, pool=pool, queue=queue))


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
