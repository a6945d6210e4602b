"""GPU nodes: what a node is, how its service URLs are made, and where nodes come from.

Service URLs come from templates in settings, so the same engines reach
``https://ui-{node}`` on Comput3 and ``http://127.0.0.1:8188`` on a laptop.
The ``static`` provider serves a fixed list of node names and never launches
or stops anything; the Comput3 provider and the shared pool build on the same
:class:`GpuProvider` seam.
"""
from __future__ import annotations

import itertools
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import requests

from chalicelib.errors import ConfigError, NodeError
from chalicelib.settings import Settings

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


@dataclass
class NodeSource:
    """Hands the runner a healthy node for each job (round robin over the provider's nodes)."""

    provider: GpuProvider
    ready_timeout_s: float = 30.0
    _cycle: itertools.cycle[Node] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _healthy_until: dict[str, float] = field(default_factory=dict)

    def acquire(self) -> Node:
        """A node whose health check passed. Raises :class:`NodeError` when none is ready in time."""
        with self._lock:
            if self._cycle is None:
                self._cycle = itertools.cycle(self.provider.list())
            node = next(self._cycle)
        if self._healthy_until.get(node.name, 0) > time.monotonic():
            return node
        deadline = time.monotonic() + self.ready_timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                reply = requests.get(node.url("health"), headers=node.headers(), timeout=5)
                if reply.status_code == 200:
                    self._healthy_until[node.name] = time.monotonic() + 10
                    return node
                last = f"HTTP {reply.status_code}"
            except requests.RequestException as err:
                last = type(err).__name__
            time.sleep(0.5)
        raise NodeError(f"GPU node {node.name} was not ready within {self.ready_timeout_s:.0f} s ({last})")

    def unhealthy(self, node: Node) -> None:
        """Forget a node's good health after it failed a call, so the next use checks again."""
        self._healthy_until.pop(node.name, None)


def build_node_source(settings: Settings) -> NodeSource:
    templates = NodeTemplates.from_settings(settings)
    if settings.gpu_provider == "static":
        return NodeSource(StaticProvider(settings.static_nodes, templates), settings.node_ready_timeout_s)
    raise ConfigError(f"GPU_PROVIDER: unknown provider {settings.gpu_provider!r} (known: static)")
