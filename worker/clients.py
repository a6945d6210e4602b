"""Clients to a node's services, cached per URL (one per node and service, not one per job),
and the one place that turns a client's failure into the node's fault or the caller's."""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any, TypeVar

import httpx
import requests
from gradio_client import Client
from gradio_client.exceptions import AppError

from chalicelib.errors import Cancelled, EngineError, NodeError
from worker.context import JobContext
from worker.gpu.nodes import Node

T = TypeVar("T")


class GradioClients:
    """Gradio clients per service URL. Outputs come back as URLs (``download_files=False``) and
    :meth:`download` fetches them in parallel over one pooled session: several files one after
    another through the client cost a round trip each."""

    def __init__(self, *, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._clients: dict[tuple[str, str | None], Client] = {}
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
        self.session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=16))
        self._pool = futures.ThreadPoolExecutor(8, thread_name_prefix="gradio-download")

    def get(self, url: str, node: Node) -> Client:
        key = (url, node.api_key)
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        try:
            client = Client(url, headers=node.headers(), verbose=False, download_files=False,
                            httpx_kwargs={"timeout": self.timeout_s}, analytics_enabled=False)
        except (httpx.HTTPError, OSError, ValueError) as err:
            raise NodeError(f"GPU node {node.name}: cannot open {url} ({type(err).__name__}: {err})") from err
        with self._lock:
            self._clients[key] = client
        return client

    def forget(self, url: str, node: Node) -> None:
        with self._lock:
            self._clients.pop((url, node.api_key), None)

    def call(self, url: str, node: Node, ctx: JobContext, api_name: str, **params: Any) -> Any:
        """Submit a Gradio job and wait for it, cancelling it remotely if this job is stopped."""
        client = self.get(url, node)
        with ctx.on_node():
            return self._call(client, url, node, ctx, api_name, params)

    def _call(self, client: Client, url: str, node: Node, ctx: JobContext, api_name: str,
              params: dict[str, Any]) -> Any:
        try:
            job = client.submit(api_name=api_name, **params)
            while True:
                # Wake the moment the job ends; look at the stop flag and progress a few times a second.
                done, _ = futures.wait([job.future], timeout=0.2)
                if done:
                    break
                _report_progress(job, ctx)
                if ctx.stopped:
                    job.cancel()
                    ctx.check()
                if ctx.remaining_s() <= 0:
                    job.cancel()
                    ctx.stop("timed_out")
                    ctx.check()
            return job.result(timeout=5)
        except Cancelled:
            raise
        except AppError as err:
            raise EngineError(f"the model server refused the job: {err}") from err
        except (httpx.HTTPError, OSError, ConnectionError, TimeoutError) as err:
            self.forget(url, node)
            raise NodeError(f"GPU node {node.name} failed during {api_name} ({type(err).__name__})") from err
        except Exception as err:  # gradio_client raises plain exceptions for protocol failures
            self.forget(url, node)
            raise NodeError(f"GPU node {node.name}: {api_name} failed: {err}") from err


    def download(self, node: Node, outputs: list[Any], workdir: Path, ctx: JobContext) -> list[Path]:
        """Fetch Gradio file outputs (``{"url", "path"}``) into ``workdir``, in parallel."""
        def one(index: int, item: Any) -> Path:
            url = item.get("url") if isinstance(item, dict) else None
            if not url:
                raise EngineError(f"the model server returned a file without a URL: {str(item)[:200]}")
            name = Path(str(item.get("orig_name") or item.get("path") or f"output-{index}")).name
            dest = workdir / f"{index}-{name}"

            def call() -> None:
                reply = self.session.get(url, headers=node.headers(), timeout=self.timeout_s)
                reply.raise_for_status()
                dest.write_bytes(reply.content)
            node_http(node, call)
            return dest
        with ctx.on_node():
            return list(self._pool.map(lambda pair: one(*pair), enumerate(outputs)))


def _report_progress(job: Any, ctx: JobContext) -> None:
    """The Gradio app's own progress (a ``gr.Progress`` tracker: CSM reports each sentence)."""
    units = job.status().progress_data
    if not units:
        return
    unit = units[-1]
    if unit.progress is not None:
        ctx.report(float(unit.progress))
    elif unit.index is not None and unit.length:
        ctx.report(unit.index / unit.length)


def node_http(node: Node, call: Callable[[], T]) -> T:
    """Run an HTTP call to a node: connection trouble and 5xx are the node's fault (retried)."""
    try:
        return call()
    except requests.HTTPError as err:
        status = err.response.status_code if err.response is not None else 0
        if status >= 500:
            raise NodeError(f"GPU node {node.name} answered HTTP {status}") from err
        body = err.response.text[:300] if err.response is not None else ""
        raise EngineError(f"GPU node {node.name} refused the request: HTTP {status} {body}") from err
    except requests.RequestException as err:
        raise NodeError(f"GPU node {node.name} did not answer ({type(err).__name__})") from err
