"""WSGI entry point: the Chalice app behind a production server (gunicorn).

A small adapter turns each WSGI request into the API Gateway proxy event that
Lambda would deliver and hands it to Chalice's own handler (``app(event, ctx)``),
so routing, middleware, validation and errors behave exactly as on Lambda.
Run: ``gunicorn wsgi:application``.
"""
from __future__ import annotations

import base64
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from app import add_job_routes, app
from chalicelib.jobs import spec as jobspec
from chalicelib.ops.logs import setup_logging
from chalicelib.settings import Settings

# A hard ceiling on what the adapter reads; the app enforces the configured limit (413).
MAX_READ_BYTES = 10 * 1024 * 1024
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_PROCESS = uuid.uuid4().hex[:12]  # request ids: this process, then a counter (uuid4 per request is a syscall)
_REQUESTS = itertools.count(1)


def _compile_routes(paths: Iterable[str]) -> list[tuple[re.Pattern[str], str]]:
    compiled = []
    for path in paths:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        compiled.append((re.compile(f"^{pattern}$"), path))
    # Literal routes before parameterised ones (/jobs/x/cancel vs /jobs/{job_id}).
    compiled.sort(key=lambda item: (item[1].count("{"), -len(item[1])))
    return compiled


class ChaliceWSGI:
    def __init__(self, chalice_app: Any) -> None:
        self.app = chalice_app
        self.routes = _compile_routes(chalice_app.routes)

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        for pattern, resource in self.routes:
            found = pattern.match(path)
            if found:
                return resource, found.groupdict()
        return None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        # WSGI hands the path over as latin-1 (PEP 3333); clients send UTF-8: read it as they meant it
        path = (environ.get("PATH_INFO") or "/").encode("latin-1", "replace").decode("utf-8", "replace")
        method = environ["REQUEST_METHOD"].upper()
        if len(path) > 1 and path.endswith("/"):
            if method in ("GET", "HEAD") and self.match(path.rstrip("/")) is not None:
                # One URL per page: /docs/ would resolve the page's relative links under /docs/docs/.
                query = environ.get("QUERY_STRING")
                return self._redirect(start_response, path.rstrip("/") + (f"?{query}" if query else ""))
            path = path.rstrip("/")
        matched = self.match(path)
        if matched is None:
            return self._error(start_response, 404, "not_found", f"no route {path}")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._error(start_response, 400, "bad_request", "bad Content-Length")
        if length > MAX_READ_BYTES:
            return self._error(start_response, 413, "payload_too_large",
                               f"request body is {length} bytes; the limit is far lower")
        body = environ["wsgi.input"].read(length) if length else b""
        event = self._event(environ, method, path, matched, body)
        reply = self.app(event, {"aws_request_id": event["requestContext"]["requestId"]})
        return self._respond(start_response, reply)

    @staticmethod
    def _event(environ: dict[str, Any], method: str, path: str, matched: tuple[str, dict[str, str]],
               body: bytes) -> dict[str, Any]:
        """The API Gateway proxy event Lambda would deliver (what Chalice's Request reads of it)."""
        resource, params = matched
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH"):
            headers["content-length"] = environ["CONTENT_LENGTH"]
        raw_query = environ.get("QUERY_STRING")
        query = parse_qs(raw_query, keep_blank_values=True) if raw_query else None
        encoded: str | None = None
        is_text = headers.get("content-type", "application/json").startswith(_TEXT_TYPES)
        if body:
            try:
                encoded = body.decode("utf-8") if is_text else None
            except UnicodeDecodeError:
                encoded = None
            if encoded is None:
                is_text = False
                encoded = base64.b64encode(body).decode("ascii")
        return {
            "resource": resource, "path": path, "httpMethod": method, "headers": headers,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None, "stageVariables": None,
            "requestContext": {"resourcePath": resource, "httpMethod": method, "path": path, "stage": "api",
                               "requestId": f"{_PROCESS}-{next(_REQUESTS)}",
                               "identity": {"sourceIp": environ.get("REMOTE_ADDR", "")}},
            "body": encoded, "isBase64Encoded": bool(body) and not is_text,
        }

    @staticmethod
    def _respond(start_response: StartResponse, reply: dict[str, Any]) -> list[bytes]:
        status = int(reply["statusCode"])
        raw = reply.get("body") or ""
        payload = base64.b64decode(raw) if reply.get("isBase64Encoded") else raw.encode("utf-8")
        headers = [(k, str(v)) for k, v in (reply.get("headers") or {}).items()]
        for name, values in (reply.get("multiValueHeaders") or {}).items():
            headers += [(name, str(v)) for v in values]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {_reason(status)}", headers)
        return [payload]

    @staticmethod
    def _redirect(start_response: StartResponse, location: str) -> list[bytes]:
        start_response("308 Permanent Redirect", [("Location", location), ("Content-Length", "0")])
        return [b""]

    @staticmethod
    def _error(start_response: StartResponse, status: int, code: str, message: str) -> list[bytes]:
        payload = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
        start_response(f"{status} {_reason(status)}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def build() -> ChaliceWSGI:
    """The WSGI app for this process: logging set up from settings (secrets redacted), and the
    routes of the job types of ``JOB_PLUGINS`` added to the built-in ones."""
    settings = Settings.from_env()
    setup_logging(fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets())
    add_job_routes(jobspec.load(settings.job_plugins))
    return ChaliceWSGI(app)


application = build()
