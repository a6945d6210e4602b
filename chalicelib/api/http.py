"""The API's HTTP layer, shared by every blueprint: the request in hand, JSON answers, errors as JSON,
the caller (authentication and rate limits), bodies, query parameters and waits.

Errors are JSON everywhere: ``{"error": {"code", "message", "fields"?, "status"?}}``.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from chalice.app import Chalice, Request, Response

from chalicelib.api.callers import Principal
from chalicelib.api.compat import V1
from chalicelib.api.openapi import query_names
from chalicelib.api.wiring import get_service
from chalicelib.errors import (
    BadRequest,
    BudgetExceeded,
    FieldProblem,
    NotReady,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    RenderError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from chalicelib.jobs.models import RateState


class App(Chalice):
    """Chalice, keeping the request being served per thread of control.

    Chalice keeps ``current_request`` on the app object; served by gevent, many requests are in
    flight in one process at once (greenlets), and each must see its own. A context variable is
    per greenlet (and per thread), so each view reads its own request.
    """

    _current: ContextVar[Request | None] = ContextVar("current_request", default=None)

    def __init__(self, app_name: str) -> None:
        super().__init__(app_name=app_name)
        _SERVING.append(self)

    @property
    def current_request(self) -> Request | None:
        return self._current.get()

    @current_request.setter
    def current_request(self, request: Request | None) -> None:
        self._current.set(request)


# The app whose request the views read. Asked of the app object, not of App: chalice local swaps the
# app's class for its own, which keeps the request in a thread-local instead.
_SERVING: list[Chalice] = []
log = logging.getLogger("c3render.api")

Headers = dict[str, "str | list[str]"]
_COMPAT: ContextVar[str] = ContextVar("compat", default="")  # the calling key's compatibility mode
QUEUE_FULL_RETRY_S = 30  # a key at its cap of queued jobs: a guess at when some have started


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; every route returns through here."""
    merged: Headers = {"Content-Type": "application/json"}
    merged.update(headers or {})
    return Response(body=body, status_code=status, headers=merged)


def no_content(headers: dict[str, str]) -> Response:
    """204, for a delete."""
    merged: Headers = dict(headers)
    return Response(body="", status_code=204, headers=merged)


def current_request() -> Request:
    """The request being served (in this greenlet or thread)."""
    request = _SERVING[-1].current_request if _SERVING else None
    if request is None:  # only outside a request (e.g. a bare import); never inside a route
        raise RuntimeError("no current request")
    return request


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(err: RenderError) -> Response:
    """The one place a RenderError becomes an HTTP response."""
    if _COMPAT.get() == V1:
        return _v1_error(err)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(err, ValidationError):
        extra["fields"] = [p.to_dict() for p in err.problems]
    if isinstance(err, NotReady):
        extra["status"] = err.status
        headers["Retry-After"] = "1"
    if err.http_status == 503:
        headers["Retry-After"] = "1"
    if isinstance(err, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="c3-render"'
    if isinstance(err, QueueFull):
        headers["Retry-After"] = str(QUEUE_FULL_RETRY_S)
    if isinstance(err, BudgetExceeded):
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
    if isinstance(err, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
        headers.update(rate_headers(RateState(limit=err.limit, remaining=0, reset_s=err.reset_s)))
    return respond(error_body(err.code, str(err), **extra), err.http_status, headers)


def _v1_error(err: RenderError) -> Response:
    """The first version's error answers: ``{"error": "<message>"}``; an unfinished result was a 400."""
    headers = {"Retry-After": "1"} if err.http_status == 503 else {}
    if isinstance(err, (RateLimited, BudgetExceeded)):
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
    if isinstance(err, NotReady):
        return respond({"error": "Job not completed", "status": err.status}, 400)
    return respond({"error": str(err)}, err.http_status, headers)


def api_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Map RenderError to its status; anything else is a logged 500 without internals."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except RenderError as err:
            return error_response(err)
        except Exception:
            log.exception("unhandled error in %s", view.__name__)
            return respond(error_body("internal_error", "an internal error occurred"), 500)
    return wrapper


def rate_headers(rate: RateState | None) -> dict[str, str]:
    if rate is None:
        return {}
    return {"RateLimit-Limit": str(rate.limit), "RateLimit-Remaining": str(max(0, rate.remaining)),
            "RateLimit-Reset": str(max(0, math.ceil(rate.reset_s)))}


class Caller:
    """The authenticated caller of this request, and the rate-limit headers to send back."""

    def __init__(self, principal: Principal, rate: RateState | None) -> None:
        self.principal = principal
        self.headers = rate_headers(rate)


def caller(*, charge: bool = True) -> Caller:
    """Authenticate the request (401) and charge its rate limit (429).

    A request without a valid key is charged to the client's address instead, so a client
    that keeps failing is slowed down (429) rather than answered as fast as it can ask.
    """
    service = get_service()
    request = current_request()
    try:
        principal = service.callers.authenticate(request.headers)
    except Unauthorized:
        service.callers.charge_address(client_address(request))
        raise
    _COMPAT.set(principal.compat)
    return Caller(principal, service.callers.charge(principal) if charge else None)


def client_address(request: Request) -> str:
    return str(((request.context or {}).get("identity") or {}).get("sourceIp") or "unknown")


def json_body(request: Request) -> Any:
    """The parsed JSON body; 415 for another media type, 413 over the size limit, 400 if malformed.

    The limit is MAX_BODY_BYTES (64 KiB), or MAX_INLINE_BODY_BYTES (8 MiB) for a body that carries
    a ``data:`` URI (its bytes are stored as an upload; no view or log carries them).
    """
    settings = get_service().settings
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType(f"send the body as JSON with Content-Type: application/json (got {ctype})")
    raw = request.raw_body
    limit = settings.max_inline_body_bytes if b'"data:' in raw else settings.max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit}"
                              + ("" if limit == settings.max_inline_body_bytes else
                                 f" ({settings.max_inline_body_bytes} with a data: URI; larger files: POST /uploads)"))
    if not raw:
        raise BadRequest("request body is empty; send a JSON object")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from err
    except RecursionError as err:
        raise BadRequest("request body is nested too deeply") from err
    if b"\\u" in raw and _has_lone_surrogate(body):
        raise BadRequest("request body is not valid JSON: a \\u escape names half of a surrogate pair")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_lone_surrogate(value: Any) -> bool:
    """A ``\\ud800``-style escape without its pair: valid to Python's parser, not text anything can store."""
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def query() -> dict[str, str]:
    """The request's query parameters; any the operation does not document (chalicelib/api/openapi.py), or
    one given twice, is a 400 naming it."""
    request = current_request()
    params: Any = request.query_params or {}
    if not params:
        return {}
    allowed = query_names(request.method, (request.context or {}).get("resourcePath", ""))
    problems = [FieldProblem(name, "unknown query parameter" if name not in allowed else "given more than once")
                for name in params if name not in allowed or len(params.getlist(name)) > 1]
    if problems:
        raise ValidationError(problems)
    return {name: params[name] for name in params}


def wait_seconds(value: str | None, *, field: str = "wait") -> float:
    """``?wait=N``: whole seconds, 0..MAX_WAIT_S (a 400 naming ``wait`` otherwise)."""
    if value is None:
        return 0.0
    cap = get_service().settings.max_wait_s
    if not re.fullmatch(r"[0-9]{1,5}", value) or int(value) > cap:
        raise ValidationError([FieldProblem(field, f"must be whole seconds from 0 to {cap}")])
    return float(value)


def preferred_wait(headers: Any) -> int:
    """``Prefer: wait=N`` (RFC 7240), capped at MAX_WAIT_S; 0 when absent. Like every preference, one
    the server cannot read is ignored (RFC 7240, section 2)."""
    found = re.search(r"(?:^|[,;\s])wait\s*=\s*\"?([0-9]{1,5})\"?(?:$|[,;\s])", headers.get("prefer", ""))
    return min(int(found.group(1)), get_service().settings.max_wait_s) if found else 0
