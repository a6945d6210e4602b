"""GPU nodes: what a node is, how its service URLs are made, and where nodes come from.

Service URLs come from templates in settings (every ``*_URL`` setting declared as
a node service), so the same engines reach ``https://ui-{node}`` on Comput3 and
``http://127.0.0.1:8188`` on a laptop. A :class:`GpuProvider` says what it can do
(launch, stop) and how its nodes take their key; the ``static`` provider serves a
fixed list of node names and does neither. The Comput3 provider is in
``worker/gpu/comput3.py``; the pool over them in ``worker/gpu/pool.py``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from chalicelib.errors import ConfigError


@dataclass(frozen=True)
class Node:
    name: str
    urls: dict[str, str]
    api_key: str | None = None
    auth_header: str = "X-C3-API-KEY"
    workload: str | None = None
    expires: float | None = None

    def url(self, service: str) -> str:
        try:
            return self.urls[service]
        except KeyError:
            raise ConfigError(f"no URL template for the node service {service!r} (a *_URL setting)") from None

    def headers(self) -> dict[str, str]:
        return {self.auth_header: self.api_key} if self.api_key else {}


@dataclass(frozen=True)
class NodeTemplates:
    """Service name -> URL template (``{node}`` is the node's name), and the key nodes take."""

    urls: dict[str, str]
    api_key: str | None = None

    def node(self, name: str, *, auth_header: str, workload: str | None = None,
             expires: float | None = None) -> Node:
        urls = {service: template.format(node=name) for service, template in self.urls.items()}
        return Node(name=name, urls=urls, api_key=self.api_key, auth_header=auth_header, workload=workload,
                    expires=expires)


class GpuProvider(ABC):
    """Where nodes come from: launch one, list ours, stop one; and what this provider can do."""

    can_launch: ClassVar[bool] = True
    can_stop: ClassVar[bool] = True
    auth_header: ClassVar[str] = "X-C3-API-KEY"  # how its nodes' services take the key

    def __init__(self, templates: NodeTemplates) -> None:
        self.templates = templates

    def node(self, name: str, *, workload: str | None = None, expires: float | None = None) -> Node:
        """The node called ``name``, with its service URLs."""
        return self.templates.node(name, auth_header=self.auth_header, workload=workload, expires=expires)

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

    can_launch = False
    can_stop = False

    def __init__(self, names: tuple[str, ...], templates: NodeTemplates) -> None:
        super().__init__(templates)
        if not names:
            raise ConfigError("STATIC_NODES: list at least one node (host or host:port)")
        self.nodes = [self.node(name) for name in names]

    def launch(self) -> Node:
        raise ConfigError("the static provider cannot launch nodes; add them to STATIC_NODES")

    def list(self) -> list[Node]:
        return list(self.nodes)

    def stop(self, node: Node) -> None:
        raise ConfigError("the static provider does not stop nodes")
