"""GPU nodes: what a node is, how its service URLs are made, and where nodes come from.

Service URLs come from templates in settings, so the same engines reach
``https://ui-{node}`` on Comput3 and ``http://127.0.0.1:8188`` on a laptop.
The ``static`` provider serves a fixed list of node names and never launches
or stops anything; the Comput3 provider and the shared pool build on the same
:class:`GpuProvider` seam.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from chalicelib.errors import ConfigError
from chalicelib.metrics import Metrics
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from worker.pool import GpuPool

SERVICES = ("health", "csm", "whisper", "comfyui", "ollama")


@dataclass(frozen=True)
class Node:
    name: str
    urls: dict[str, str]
    api_key: str | None = None
    workload: str | None = None
    expires: float | None = None

    def url(self, service: str) -> str:
        return self.urls[service]

    def headers(self) -> dict[str, str]:
        return {"X-C3-API-KEY": self.api_key} if self.api_key else {}


@dataclass(frozen=True)
class NodeTemplates:
    health: str
    csm: str
    whisper: str
    comfyui: str
    ollama: str
    api_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeTemplates:
        return cls(health=settings.node_health_url, csm=settings.csm_url, whisper=settings.whisper_url,
                   comfyui=settings.comfyui_url, ollama=settings.ollama_url, api_key=settings.node_api_key)

    def node(self, name: str, *, workload: str | None = None, expires: float | None = None) -> Node:
        urls = {service: getattr(self, service).format(node=name) for service in SERVICES}
        return Node(name=name, urls=urls, api_key=self.api_key, workload=workload, expires=expires)


class GpuProvider(ABC):
    """Where nodes come from: launch one, list ours, stop one."""

    @abstractmethod
    def launch(self) -> Node:
        """Start a node (it may take minutes to become ready)."""

    @abstractmethod
    def list(self) -> list[Node]:
        """Our running nodes."""

    @abstractmethod
    def stop(self, node: Node) -> None:
        """Stop a node for good."""


class StaticProvider(GpuProvider):
    """Fixed node names (self-hosted GPUs or the devnode): never launches or stops anything."""

    def __init__(self, names: tuple[str, ...], templates: NodeTemplates) -> None:
        if not names:
            raise ConfigError("STATIC_NODES: list at least one node (host or host:port)")
        self.nodes = [templates.node(name) for name in names]

    def launch(self) -> Node:
        raise ConfigError("the static provider cannot launch nodes; add them to STATIC_NODES")

    def list(self) -> list[Node]:
        return list(self.nodes)

    def stop(self, node: Node) -> None:
        raise ConfigError("the static provider does not stop nodes")


def build_pool(settings: Settings, client: redis.Redis, metrics: Metrics | None = None) -> GpuPool:
    """The shared pool over the configured provider (``static`` or ``comput3``)."""
    from worker.pool import GpuPool, PoolConfig

    templates = NodeTemplates.from_settings(settings)
    provider: GpuProvider
    if settings.gpu_provider == "static":
        provider = StaticProvider(settings.static_nodes, templates)
    elif settings.gpu_provider == "comput3":
        from worker.comput3 import Comput3Provider

        if not settings.c3_api_key:
            raise ConfigError("C3_API_KEY is required with GPU_PROVIDER=comput3")
        provider = Comput3Provider(base_url=settings.c3_api_url, api_key=settings.c3_api_key,
                                   node_type=settings.gpu_type, lifetime_s=settings.gpu_lifetime_s,
                                   templates=templates, retries=settings.gpu_launch_retries,
                                   backoff_s=settings.gpu_launch_backoff_s)
    else:
        raise ConfigError(f"GPU_PROVIDER: unknown provider {settings.gpu_provider!r} (known: static, comput3)")
    static = settings.gpu_provider == "static"
    config = PoolConfig(jobs_per_node=settings.jobs_per_node,
                        max_nodes=len(settings.static_nodes) if static else settings.max_gpu_nodes,
                        scale_up_queue_per_node=settings.scale_up_queue_per_node,
                        scale_up_after_s=settings.scale_up_after_s,
                        placement=settings.pool_placement,
                        idle_timeout_s=settings.gpu_idle_timeout_s, surplus_idle_s=(
                            settings.gpu_surplus_idle_s if settings.gpu_surplus_idle_s is not None
                            else settings.gpu_idle_timeout_s),
                        lease_s=settings.lease_s,
                        ready_timeout_s=settings.node_ready_timeout_s,
                        # A static node is ready or not; a launch also waits for Comput3 itself.
                        acquire_timeout_s=settings.node_ready_timeout_s + (0 if static else 300),
                        expiry_margin_s=settings.gpu_expiry_margin_s)
    return GpuPool(client=client, provider=provider, templates=templates, config=config, static=static,
                   metrics=metrics)
