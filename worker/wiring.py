"""Builds the worker's parts from settings: engines, the GPU pool and its provider, runners, notifier.

Every factory of the worker is here, so the modules it builds import nothing of each other's
construction (no import cycles), and each component's config comes from :class:`Settings`.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
import uuid
from types import ModuleType

from chalicelib.api.wiring import build_links, build_uploads
from chalicelib.errors import ConfigError
from chalicelib.files.storage import ObjectStorage
from chalicelib.jobs import spec as jobspec
from chalicelib.jobs.spec import Catalog
from chalicelib.ops.metrics import ClusterCollector, Metrics
from chalicelib.queues import make_queue
from chalicelib.security.auth import KeyStore
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Outbox
from chalicelib.store.pool import PoolStore
from worker import engines as engines_package
from worker.engines.base import Engine
from worker.engines.deps import EngineDeps
from worker.engines.echo import EchoEngine
from worker.gpu.comput3 import Comput3Provider
from worker.gpu.nodes import GpuProvider, NodeTemplates, StaticProvider
from worker.gpu.pool import GpuPool, PoolConfig
from worker.notifier import Notifier, NotifierConfig
from worker.runner import Runner, RunnerConfig
from worker.sweeper import Sweeper


def _store(settings: Settings) -> JobStore:
    return JobStore.from_url(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 2.0),
                             result_ttl_s=settings.result_ttl_s, gpu_price_per_hour=settings.price_per_hour())


def engine_classes(plugins: tuple[str, ...] = ()) -> dict[str, type[Engine]]:
    """Job type -> engine class, from every ``worker/engines`` module and ``JOB_PLUGINS`` module with an ``ENGINE``."""
    modules: list[ModuleType] = [importlib.import_module(f"{engines_package.__name__}.{info.name}")
                                 for info in pkgutil.iter_modules(engines_package.__path__)]
    modules += jobspec.plugin_modules(plugins)
    classes: dict[str, type[Engine]] = {}
    for module in modules:
        engine = getattr(module, "ENGINE", None)
        if engine is not None:
            classes[engine.job_type] = engine
    return classes


def build_engines(settings: Settings, catalog: Catalog) -> dict[str, Engine]:
    """One engine per job type, as ``WORKER_ENGINE`` says: ``real`` (GPU nodes) or ``echo`` (tests)."""
    deps = EngineDeps.from_settings(settings)
    if settings.worker_engine == "echo":
        return {spec.name: EchoEngine(deps, spec) for spec in catalog}
    classes = engine_classes(settings.job_plugins)
    missing = [spec.name for spec in catalog if spec.name not in classes]
    if missing:
        raise ConfigError(f"no engine for the job types {', '.join(missing)} (an ENGINE in worker/engines/)")
    return {spec.name: classes[spec.name](deps, spec) for spec in catalog}


def build_provider(settings: Settings) -> GpuProvider:
    """The configured ``GPU_PROVIDER``: ``static`` or ``comput3``."""
    templates = NodeTemplates(urls=settings.service_templates(), api_key=settings.node_api_key)
    if settings.gpu_provider == "comput3":
        if not settings.c3_api_key:
            raise ConfigError("C3_API_KEY is required with GPU_PROVIDER=comput3")
        return Comput3Provider(base_url=settings.c3_api_url, api_key=settings.c3_api_key,
                               node_type=settings.gpu_type, lifetime_s=settings.gpu_lifetime_s,
                               templates=templates, retries=settings.gpu_launch_retries,
                               backoff_s=settings.gpu_launch_backoff_s)
    return StaticProvider(settings.static_nodes, templates)


def build_pool(settings: Settings, store: PoolStore, metrics: Metrics | None = None) -> GpuPool:
    """The shared pool over the configured provider."""
    provider = build_provider(settings)
    return GpuPool(store=store, provider=provider, config=PoolConfig.from_settings(
        settings, can_launch=provider.can_launch), metrics=metrics)


def build_runners(settings: Settings, shutdown: threading.Event, metrics: Metrics | None = None) -> list[Runner]:
    """One runner per concurrent slot, each with its own connections."""
    config = RunnerConfig.from_settings(settings)
    engines = build_engines(settings, jobspec.load(settings.job_plugins))
    prefix = f"w-{uuid.uuid4().hex[:6]}"
    runners = []
    for slot in range(max(1, settings.worker_concurrency)):
        store = _store(settings)
        pool = (build_pool(settings, PoolStore(store.redis), metrics)
                if any(e.needs_node for e in engines.values()) else None)
        runners.append(Runner(store=store, queue=make_queue(settings, create=settings.create_missing),
                              engines=engines, storage_factory=lambda: ObjectStorage.from_settings(settings),
                              config=config, worker_id=f"{prefix}-{slot}", shutdown=shutdown, pool=pool,
                              metrics=metrics))
    return runners


def build_notifier(settings: Settings, metrics: Metrics | None = None) -> Notifier:
    store = _store(settings)
    return Notifier(outbox=Outbox(store.redis, record_ttl_s=settings.result_ttl_s), store=store,
                    storage=ObjectStorage.from_settings(settings), config=NotifierConfig.from_settings(settings),
                    keys=KeyStore(store.redis, cache_s=settings.auth_cache_s), metrics=metrics,
                    links=build_links(settings, store.redis))


def build_sweeper(settings: Settings) -> Sweeper:
    store = _store(settings)
    return Sweeper(store=store, uploads=build_uploads(settings, store.redis),
                   storage=lambda: ObjectStorage.from_settings(settings), every_s=settings.sweep_every_s)


def build_metrics(settings: Settings) -> Metrics:
    """The worker's metrics, with the cluster's state read from Redis at each scrape."""
    metrics = Metrics()
    store = _store(settings)
    queue = make_queue(settings)
    metrics.add_collector(ClusterCollector(
        store=store, outbox=Outbox(store.redis, record_ttl_s=settings.result_ttl_s), pool=PoolStore(store.redis),
        queue_depth=queue.depth, live_within_s=settings.worker_heartbeat_s * 3,
        idle_timeout_s=settings.gpu_idle_timeout_s,
        price_per_hour=settings.price_per_hour(), max_node_seconds_per_hour=settings.max_node_seconds_per_hour))
    return metrics
