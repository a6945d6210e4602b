"""The Comput3.ai provider: launch, list, stop and balance on the real control plane API.

Every call sends ``X-C3-API-KEY``. Launch is retried with backoff on 5xx,
timeouts and HTML error pages (Cloudflare answers HTML, not JSON); a 401 means
the key is wrong and is not retried.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import requests

from chalicelib.errors import EngineError, NodeError
from worker.gpu.nodes import GpuProvider, Node, NodeTemplates

log = logging.getLogger(__name__)


class LaunchFailed(NodeError):
    """No node could be launched after the retries."""


class ProviderRefused(EngineError):
    """Comput3 refused the key (401/403): retrying cannot help."""


class _Retryable(Exception):
    pass


class _Missing(NodeError):
    """Comput3 answered 404: no such workload (it is gone already)."""


class Comput3Provider(GpuProvider):
    """Launches, lists and stops nodes on Comput3; its nodes take ``X-C3-API-KEY``."""

    TIMEOUT_S = 30.0  # one control-plane call

    def __init__(self, *, base_url: str, api_key: str, node_type: str, lifetime_s: float, templates: NodeTemplates,
                 retries: int, backoff_s: float) -> None:
        super().__init__(templates)
        self.base_url = base_url.rstrip("/")
        self.node_type = node_type
        self.lifetime_s = lifetime_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = self.TIMEOUT_S
        self.session = requests.Session()
        self.session.headers.update({"X-C3-API-KEY": api_key, "Content-Type": "application/json"})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            reply = self.session.request(method, self.base_url + path, json=body, timeout=self.timeout_s)
        except requests.Timeout as err:
            raise _Retryable(f"timed out after {self.timeout_s:.0f} s") from err
        except requests.RequestException as err:
            raise _Retryable(f"cannot reach Comput3 ({type(err).__name__})") from err
        if reply.status_code in (401, 403):
            raise ProviderRefused(f"Comput3 refused C3_API_KEY (HTTP {reply.status_code}): the key is wrong or revoked")
        is_html = "html" in reply.headers.get("Content-Type", "") or reply.text.lstrip().startswith("<")
        if reply.status_code >= 500 or is_html:
            raise _Retryable(f"Comput3 answered HTTP {reply.status_code}{' (an HTML error page)' if is_html else ''}")
        if reply.status_code == 404:
            raise _Missing(f"Comput3 has no such workload ({path}: HTTP 404)")
        if reply.status_code >= 400:
            raise NodeError(f"Comput3 refused {path}: HTTP {reply.status_code} {reply.text[:200]}")
        try:
            return reply.json()
        except ValueError as err:
            raise _Retryable("Comput3 answered something that is not JSON") from err

    def launch(self) -> Node:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                data = self._call("POST", "/launch", {"type": self.node_type,
                                                      "expires": int(time.time() + self.lifetime_s)})
                node = self.node(str(data["node"]), workload=str(data["workload"]),
                                 expires=time.time() + self.lifetime_s)
                log.info("launched %s (workload %s)", node.name, node.workload, extra={"node": node.name})
                return node
            except _Retryable as err:
                last = str(err)
                log.warning("launch attempt %d failed: %s", attempt + 1, last)
                if attempt < self.retries:
                    time.sleep(self.backoff_s * 2 ** attempt)
            except (KeyError, TypeError) as err:
                last = f"unexpected launch answer ({err})"
        raise LaunchFailed(f"could not launch a {self.node_type} GPU node after {self.retries + 1} tries: {last}")

    def list(self) -> list[Node]:
        try:
            items = self._call("POST", "/workloads", {"running": True})
        except _Retryable as err:
            raise NodeError(f"cannot list Comput3 workloads: {err}") from err
        nodes = []
        for item in items:
            if item.get("running") and item.get("status") == "running" and item.get("type") == self.node_type:
                nodes.append(self.node(str(item["node"]), workload=str(item["workload"]),
                                       expires=float(item.get("expires") or 0)))
        return nodes

    def stop(self, node: Node) -> None:
        """Stop the node's workload; one that is gone already (404) counts as stopped."""
        if not node.workload:
            return
        try:
            self._call("POST", "/stop", {"workload": node.workload})
            log.info("stopped %s (workload %s)", node.name, node.workload, extra={"node": node.name})
        except _Missing:
            log.info("%s was gone already (workload %s)", node.name, node.workload, extra={"node": node.name})
        except _Retryable as err:
            raise NodeError(f"cannot stop {node.name}: {err}") from err

    def balance(self) -> float:
        try:
            return float(self._call("GET", "/balance")["balance"])
        except _Retryable as err:
            raise NodeError(f"cannot read the Comput3 balance: {err}") from err
