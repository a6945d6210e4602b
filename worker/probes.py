"""The worker's own small HTTP server: ``/metrics``, ``/healthz`` (liveness), ``/readyz``.

- ``/healthz`` is 200 while every runner's heartbeat thread is ticking. A stuck
  process is what a restart fixes; Redis being down is not, so it is not checked here.
- ``/readyz`` is 200 while the job store answers and the worker is not shutting down.
- ``/metrics`` is the Prometheus exposition of this process's registry, which also
  holds the :class:`~chalicelib.ops.metrics.ClusterCollector`.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.errors import RenderError
from chalicelib.ops.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


class ProbeServer:
    def __init__(self, *, port: int, metrics: Metrics, alive: Callable[[], str | None],
                 ready: Callable[[], str | None], host: str = "0.0.0.0") -> None:
        """``alive``/``ready`` return None when fine, else the reason for a 503."""
        self.metrics, self.alive, self.ready = metrics, alive, ready
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, name="probes", daemon=True).start()
        log.info("metrics and probes on :%d", self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, server.metrics.render(), CONTENT_TYPE)
                elif path in ("/healthz", "/readyz"):
                    check = server.alive if path == "/healthz" else server.ready
                    try:
                        problem = check()
                    except RenderError as err:
                        problem = str(err)
                    body: dict[str, Any] = {"status": "ok"} if problem is None else {"status": "fail",
                                                                                     "reason": problem}
                    self._send(200 if problem is None else 503, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not news
                pass

        return Handler
