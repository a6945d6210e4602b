"""How gunicorn serves the API: gevent workers, and errors that are JSON even before the app runs.

``gunicorn.conf.py`` names :class:`JsonGeventWorker`. Each connection is a greenlet, so a
slow client (a header byte a second) or a waiting one (``Prefer: wait``) costs a few
kilobytes of memory, not a worker; keep-alive is on. gunicorn answers requests it cannot
parse (a bad header, a request line over the limit) itself, before the app: those answers
are made JSON here, in the API's error shape, like every other error.
"""
from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers.ggevent import GeventWorker

_CODES = {400: "bad_request", 403: "forbidden", 413: "payload_too_large", 414: "uri_too_long",
          417: "expectation_failed", 431: "request_header_fields_too_large", 500: "internal_error",
          501: "not_implemented"}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error page, as ``{"error": {"code", "message"}}``."""
    body = json.dumps({"error": {"code": _CODES.get(status_int, "bad_request"),
                                 "message": mesg or reason}}, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
    util.write_nonblock(sock, head + body)


util.write_error = write_json_error  # gunicorn calls util.write_error for every answer it makes itself


class _OneWriteResponse(gunicorn_wsgi.Response):  # type: ignore[misc]  # gunicorn has no type hints
    """A response of known length goes out in one write, head and body together (gunicorn writes
    the head, then the body: two system calls and two packets for every small JSON answer)."""

    _head: bytes | None = None
    headers_sent: bool
    chunked: bool
    response_length: int | None

    def send_headers(self) -> None:
        if self.headers_sent or self.chunked or self.response_length is None:
            super().send_headers()
            return
        lines = [*self.default_headers(), *(f"{k}: {v}\r\n" for k, v in self.headers)]
        self._head = util.to_bytestring("".join(lines) + "\r\n", "latin-1")
        self.headers_sent = True

    def _emit_body(self, data: bytes) -> None:
        head, self._head = self._head, None
        util.write(self.sock, head + data if head else data, self.chunked)

    def close(self) -> None:
        head, self._head = self._head, None
        if head:  # a response without a body (204, HEAD)
            util.write(self.sock, head)
        super().close()


gunicorn_wsgi.Response = _OneWriteResponse  # what gunicorn's workers build each response with


class JsonGeventWorker(GeventWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's gevent worker; its own error answers are JSON (see :func:`write_json_error`), and
    each response is one write (:class:`_OneWriteResponse`)."""
