"""A real HTTP webhook receiver for tests: scripted answers, every request recorded."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


class Receiver:
    """Answers requests from ``script`` in order, then ``default``; records each request."""

    def __init__(self, default: Answer | None = None) -> None:
        self.default = default or Answer()
        self.script: list[Answer] = []
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    outer.requests.append(Received(time.monotonic(), self.path,
                                                   {k.lower(): v for k, v in self.headers.items()}, body))
                    answer = outer.script.pop(0) if outer.script else outer.default
                if answer.hang_s:
                    time.sleep(answer.hang_s)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.requests)} requests, expected {count}")


def receiving(default: Answer | None = None) -> Iterator[Receiver]:
    receiver = Receiver(default).start()
    try:
        yield receiver
    finally:
        receiver.stop()


class BlackHole:
    """A receiver that accepts connections, reads the request and never answers; counts them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.accepted += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
                self._conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    if not conn.recv(65536):
                        break  # the sender gave up and closed
                except TimeoutError:
                    continue
        except OSError:
            pass
        finally:
            with self._lock:
                self.open -= 1
            conn.close()

    def __enter__(self) -> BlackHole:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
