"""C3 Render API: the Chalice app. HTTP concerns only; the work is in chalicelib.

The routes are Chalice blueprints by resource (``chalicelib/api/routes/``): jobs, files, accounts,
cluster, pages. Here: the app, its middleware (errors in one JSON shape, CORS, request metrics) and
the job types' submit routes.

Errors are JSON everywhere: ``{"error": {"code", "message", "fields"?, "status"?}}``.
The same app runs on Lambda, under ``chalice local`` and behind gunicorn
(``wsgi.py``), so everything here holds in all three.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from chalice.app import Request, Response

from chalicelib.api.compat import V1
from chalicelib.api.http import _COMPAT, App, error_body
from chalicelib.api.routes import accounts, cluster, files, jobs, pages
from chalicelib.api.wiring import get_service
from chalicelib.errors import RenderError
from chalicelib.jobs import spec as jobspec
from chalicelib.jobs.spec import Catalog

app = App(app_name="c3-render")
# Every answer is JSON or text; with no binary types Chalice skips checking each response's
# Content-Type against them (a measurable share of a submit's CPU time).
app.api.binary_types = []

_CHALICE_CODES = {"MethodNotAllowedError": "method_not_allowed", "UnsupportedMediaType": "unsupported_media_type",
                  "BadRequestError": "bad_request", "NotFoundError": "not_found",
                  "InternalServerError": "internal_error"}


CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Api-Key, X-C3-RENDER-KEY"
CORS_EXPOSE_HEADERS = ("Location, Retry-After, Idempotent-Replayed, RateLimit-Limit, RateLimit-Remaining, "
                       "RateLimit-Reset")


@app.middleware("http")
def uniform_errors(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Give Chalice's own error answers (405, 415, 500) the same JSON shape as ours; add CORS; count."""
    started = time.perf_counter()
    _COMPAT.set("")  # until the request's key says otherwise (caller())
    response = get_response(event)
    _count(event, response.status_code, time.perf_counter() - started)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        code = _CHALICE_CODES.get(body["Code"], "error")
        response.body = error_body(code, body.get("Message", ""))
        response.headers["Content-Type"] = "application/json"
        if _presented_compat(event) == V1:  # refused before the view read the key: its mode's shape still
            response.body = {"error": body.get("Message", "")}
    return _cors(event, response)


def _presented_compat(request: Request) -> str:
    """The compatibility mode of the key a request carries ("" when none, or not a valid one)."""
    try:
        return get_service().callers.authenticate(request.headers).compat
    except RenderError:
        return ""


def _count(request: Request, status: int, seconds: float) -> None:
    try:
        metrics = get_service().metrics
    except RenderError:  # misconfigured: the error response says so; nothing to count into
        return
    route = (request.context or {}).get("resourcePath") or "unmatched"
    metrics.http_requests.labels(route, request.method, str(status)).inc()
    metrics.http_seconds.labels(route).observe(seconds)


def _cors(request: Request, response: Response) -> Response:
    """CORS for the configured origins only (``CORS_ALLOW_ORIGINS``; none by default)."""
    origin = request.headers.get("origin")
    try:
        allowed = get_service().settings.cors_allow_origins
    except RenderError:
        return response
    if not origin or not allowed or (origin not in allowed and "*" not in allowed):
        return response
    if request.method == "OPTIONS" and response.status_code == 405:  # a preflight
        allow = response.headers.get("Allow", "GET, POST")
        response = Response(body="", status_code=204, headers={
            "Access-Control-Allow-Methods": str(allow), "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": "600"})
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    response.headers["Vary"] = "Origin"
    return response


def add_job_routes(catalog: Catalog) -> None:
    """``POST /<type>`` for every job type of ``catalog`` not routed yet (built-in ones at import;
    the ``JOB_PLUGINS`` types when the server starts: see wsgi.py)."""
    jobs.add_job_routes(app, catalog)


add_job_routes(jobspec.builtin())
for blueprint in (jobs.bp, files.bp, accounts.bp, cluster.bp, pages.bp):
    app.register_blueprint(blueprint)
