"""C3 Render API: Chalice routes. HTTP concerns only; the work is in chalicelib.

Errors are JSON everywhere: ``{"error": {"code", "message", "fields"?, "status"?}}``.
The same app runs on Lambda, under ``chalice local`` and behind gunicorn
(``wsgi.py``), so everything here holds in all three.
"""
from __future__ import annotations

import functools
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from chalice.app import Chalice, Request, Response

from chalicelib import __version__, jobspec
from chalicelib.compat import V1
from chalicelib.docs import DASHBOARD_ASSETS, dashboard_asset, dashboard_page, doc_asset, docs_page, page_csp
from chalicelib.errors import (
    BadRequest,
    BudgetExceeded,
    FieldProblem,
    NotFound,
    NotReady,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    RenderError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from chalicelib.jobspec import Catalog, JobSpec
from chalicelib.metrics import CONTENT_TYPE
from chalicelib.models import RateState, iso
from chalicelib.openapi import DOC_ASSETS, DocContext, build_openapi, query_names
from chalicelib.service import Principal
from chalicelib.wiring import get_service


class App(Chalice):
    """Chalice, keeping the request being served per thread of control.

    Chalice keeps ``current_request`` on the app object; served by gevent, many requests are in
    flight in one process at once (greenlets), and each must see its own. A context variable is
    per greenlet (and per thread), so each view reads its own request.
    """

    _current: ContextVar[Request | None] = ContextVar("current_request", default=None)

    @property
    def current_request(self) -> Request | None:
        return self._current.get()

    @current_request.setter
    def current_request(self, request: Request | None) -> None:
        self._current.set(request)


app = App(app_name="c3-render")
# Every answer is JSON or text; with no binary types Chalice skips checking each response's
# Content-Type against them (a measurable share of a submit's CPU time).
app.api.binary_types = []
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


def _request() -> Request:
    request = app.current_request
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
        return get_service().authenticate(request.headers).compat
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
    request = _request()
    try:
        principal = service.authenticate(request.headers)
    except Unauthorized:
        service.charge_address(client_address(request))
        raise
    _COMPAT.set(principal.compat)
    return Caller(principal, service.charge(principal) if charge else None)


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
    """The request's query parameters; any the operation does not document (chalicelib/openapi.py), or
    one given twice, is a 400 naming it."""
    request = _request()
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


def _submit(job_type: str) -> Response:
    request = _request()
    service = get_service()
    who = caller(charge=False)  # an accepted submit is charged inside the atomic admission step...
    try:
        query()
        body = json_body(request)
        view, created, rate = service.submit(job_type, body, principal=who.principal,
                                             idempotency_key=request.headers.get("idempotency-key"))
    except (ValidationError, BadRequest, PayloadTooLarge, UnsupportedMediaType):
        service.charge(who.principal)  # ...and a refused one here: a broken client is slowed down too
        raise
    headers = {"Location": view["links"]["status"], **rate_headers(rate)}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    wait_s = preferred_wait(request.headers)
    if wait_s:
        headers["Preference-Applied"] = f"wait={wait_s}"
        view, ended = service.wait_for_result(view["id"], principal=who.principal, wait_s=wait_s)
        if ended:
            return respond(view, 200, headers)
    return respond(view, 202 if created and who.principal.compat != V1 else 200, headers)


def add_job_routes(catalog: Catalog) -> None:
    """``POST /<type>`` for every job type of ``catalog`` not routed yet (built-in ones at import;
    the ``JOB_PLUGINS`` types when the server starts: see wsgi.py)."""
    for spec in catalog:
        if f"/{spec.name}" not in app.routes:
            app.route(f"/{spec.name}", methods=["POST"], name=f"submit_{spec.name}")(_submit_view(spec))


def _submit_view(spec: JobSpec) -> Callable[[], Response]:
    @api_errors
    def submit() -> Response:
        return _submit(spec.name)
    submit.__name__ = submit.__qualname__ = f"submit_{spec.name}"
    return submit


add_job_routes(jobspec.builtin())


@app.route("/status/{job_id}", methods=["GET"], name="job_status")
@app.route("/jobs/{job_id}", methods=["GET"], name="job_detail")
@api_errors
def job_status(job_id: str) -> Response:
    """The job; with ``?wait=N``, answered as soon as it ends (or after N s, as it is then)."""
    who = caller()
    wait_s = wait_seconds(query().get("wait"))
    return respond(get_service().status(job_id, principal=who.principal, wait_s=wait_s), headers=who.headers)


@app.route("/jobs/{job_id}", methods=["DELETE"], name="job_delete")
@api_errors
def job_delete(job_id: str) -> Response:
    """Cancel the job if it runs, then delete it and everything it left (outputs, timeline, webhooks): 204."""
    who = caller()
    query()
    get_service().delete(job_id, principal=who.principal)
    return no_content(who.headers)


@app.route("/jobs/{job_id}/retry", methods=["POST"])
@api_errors
def job_retry(job_id: str) -> Response:
    """A new job with the input of a failed, cancelled or timed-out one (``retry_of`` links back)."""
    who = caller()
    query()
    view, created = get_service().retry(job_id, principal=who.principal,
                                        idempotency_key=_request().headers.get("idempotency-key"))
    headers = {"Location": view["links"]["status"], **who.headers}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return respond(view, 202 if created else 200, headers)


@app.route("/uploads", methods=["POST"])
@api_errors
def upload_create() -> Response:
    """An upload: PUT the bytes to ``upload_url`` (straight to the bucket), then use ``url`` in a job."""
    who = caller()
    query()
    return respond(get_service().files.create_upload(json_body(_request()), owner=who.principal.owner), 201,
                   who.headers)


@app.route("/uploads/{upload_id}", methods=["GET"])
@api_errors
def upload_detail(upload_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().files.upload_view(upload_id, owner=who.principal.owner), headers=who.headers)


@app.route("/voices", methods=["POST", "GET"])
@api_errors
def voices() -> Response:
    """POST: add a voice (its clip is copied to the bucket); GET: this key's voices."""
    who = caller()
    query()
    files = get_service().files
    if _request().method == "POST":
        return respond(files.create_voice(json_body(_request()), owner=who.principal.owner), 201, who.headers)
    return respond({"voices": [v.public() for v in files.voices.list(owner=who.principal.owner)]},
                   headers=who.headers)


@app.route("/voices/{voice_id}", methods=["GET", "DELETE"])
@api_errors
def voice_detail(voice_id: str) -> Response:
    who = caller()
    query()
    files = get_service().files
    if _request().method == "DELETE":
        files.delete_voice(voice_id, owner=who.principal.owner)
        return no_content(who.headers)
    return respond(files.voices.get(voice_id, owner=who.principal.owner).public(), headers=who.headers)


@app.route("/files/{token}", methods=["GET"])
@api_errors
def file_link(token: str) -> Response:
    """A lasting result link (in webhooks, ``result_link``): a redirect to the file, signed now. No key
    needed: the link is the credential, until it expires (410)."""
    query()
    return Response(body="", status_code=302, headers={"Location": get_service().file_url(token),
                                                        "Cache-Control": "no-store"})


@app.route("/job/{job_id}", methods=["POST"])
@api_errors
def job_mark(job_id: str) -> Response:
    """The first version's route, for keys in compatibility mode v1: mark a job failed, cancelled or
    timed_out (``{"status", "error"?, "remove_data"?}``), finished or not."""
    who = caller()
    query()
    if who.principal.compat != V1:
        raise NotFound("POST /job/{id} is the first version's route, kept for keys in compatibility mode v1: "
                       "use POST /jobs/{id}/cancel or DELETE /jobs/{id}")
    return respond(get_service().mark(job_id, json_body(_request()), principal=who.principal), headers=who.headers)


@app.route("/jobs/{job_id}/events", methods=["GET"])
@api_errors
def job_events(job_id: str) -> Response:
    """The job's timeline after ``?after=CURSOR``; with ``?wait=N``, a long poll for new events."""
    who = caller()
    params = query()
    after = params.get("after", "0")
    if not re.fullmatch(r"[0-9]{1,9}", after):
        raise ValidationError([FieldProblem("after", "must be a cursor this API returned (a number)")])
    page = get_service().events(job_id, principal=who.principal, after=int(after),
                                wait_s=wait_seconds(params.get("wait")))
    return respond(page, headers=who.headers)


@app.route("/result/{job_id}", methods=["GET"])
@api_errors
def job_result(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().result(job_id, principal=who.principal), headers=who.headers)


@app.route("/jobs/{job_id}/cancel", methods=["POST"])
@api_errors
def job_cancel(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().cancel(job_id, principal=who.principal), headers=who.headers)


@app.route("/jobs/{job_id}/webhooks", methods=["GET"])
@api_errors
def job_webhooks(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().webhooks(job_id, principal=who.principal), headers=who.headers)


@app.route("/jobs/{job_id}/webhooks/redeliver", methods=["POST"])
@api_errors
def job_webhooks_redeliver(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().redeliver(job_id, principal=who.principal), 202, who.headers)


@app.route("/jobs", methods=["GET"])
@api_errors
def job_list() -> Response:
    who = caller()
    params = query()
    page = get_service().list_jobs(principal=who.principal, status=params.get("status"),
                                   job_type=params.get("type"), limit=params.get("limit"),
                                   cursor=params.get("cursor"), created_after=params.get("created_after"),
                                   created_before=params.get("created_before"), id_prefix=params.get("id_prefix"))
    return respond(page, headers=who.headers)


@app.route("/nodes", methods=["GET"])
@api_errors
def gpu_nodes() -> Response:
    who = caller()
    query()
    return respond(get_service().nodes(principal=who.principal), headers=who.headers)


@app.route("/usage", methods=["GET"])
@api_errors
def usage() -> Response:
    """GPU usage per UTC day, ``?from=&to=`` (dates; default today): the key's own (admins: every key's)."""
    who = caller()
    params = query()
    return respond(get_service().usage(principal=who.principal, date_from=params.get("from"),
                                       date_to=params.get("to")), headers=who.headers)


@app.route("/me", methods=["GET"])
@api_errors
def me() -> Response:
    who = caller()
    query()
    return respond(get_service().me(who.principal), headers=who.headers)


@app.route("/me/webhook-secret", methods=["GET", "POST"])
@api_errors
def my_webhook_secret() -> Response:
    """GET: the secret that signs this key's webhooks; POST: rotate it (the old one overlaps)."""
    who = caller()
    query()
    service = get_service()
    if _request().method == "POST":
        return respond(service.rotate_webhook_secret(who.principal), headers=who.headers)
    return respond(service.webhook_secret(who.principal), headers=who.headers)


@app.route("/health", methods=["GET"])
@api_errors
def health() -> Response:
    query()
    report, healthy = get_service().health()
    return respond(report, 200 if healthy else 503)


@app.route("/metrics", methods=["GET"])
@api_errors
def metrics() -> Response:
    """Prometheus exposition; wants ``Authorization: Bearer METRICS_TOKEN`` when one is set."""
    service = get_service()
    token = service.settings.metrics_token
    if token:
        sent = _request().headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>")
    return Response(body=service.metrics.render().decode(), status_code=200,
                    headers={"Content-Type": CONTENT_TYPE})


@app.route("/openapi.json", methods=["GET"])
@api_errors
def openapi() -> Response:
    query()
    return respond(_document())


_DOC: dict[str, Any] = {}


def _document() -> dict[str, Any]:
    """The OpenAPI document, rendered once per process (job types and limits do not change while it runs)."""
    if not _DOC:
        service = get_service()
        _DOC.update(build_openapi(__version__, DocContext.of(service.catalog, service.settings)))
    return _DOC


@app.route("/", methods=["GET"])
@api_errors
def root() -> Response:
    """Public: the service is up, and where its documentation is (the first version's body, plus links)."""
    query()
    return respond({"status": "C3 Render API is running", "timestamp": iso(time.time()), "docs": "/docs",
                    "openapi": "/openapi.json"})


_DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'")


@app.route("/docs", methods=["GET"])
@api_errors
def docs() -> Response:
    """Swagger UI, from the swagger-ui-bundle-v2 package's files, served here (no CDN), under a CSP."""
    query()
    return Response(body=docs_page(), status_code=200,
                    headers=_page_headers("text/html; charset=utf-8", cache="no-cache", csp=_DOCS_CSP))


@app.route("/docs/{asset}", methods=["GET"])
@api_errors
def docs_asset(asset: str) -> Response:
    return _static_file(asset, DOC_ASSETS, doc_asset, "documentation", cache="public, max-age=86400", csp=_DOCS_CSP)


_STORAGE_ORIGINS: list[str] = []


def _storage_origins() -> tuple[str, ...]:
    """The origin of the bucket's presigned URLs (results to play, uploads to PUT), for the dashboard's CSP."""
    if not _STORAGE_ORIGINS:
        try:
            parts = urlsplit(get_service().storage.presign("dashboard-origin-probe"))
            _STORAGE_ORIGINS.append(f"{parts.scheme}://{parts.netloc}")
        except RenderError:
            return ()
    return tuple(_STORAGE_ORIGINS)


def _page_headers(content_type: str, *, cache: str, csp: str | None = None) -> Headers:
    """A page's or static file's headers: its CSP (the dashboard's by default), no sniffing, no referrer."""
    return {"Content-Type": content_type, "Content-Security-Policy": csp or page_csp(_storage_origins()),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": cache}


def _static_file(asset: str, known: Iterable[str], read: Callable[[str], tuple[str, str]], what: str, *,
                 cache: str, csp: str | None = None) -> Response:
    """One of a page's own files, by name from a fixed list (nothing else on disk is reachable)."""
    query()
    if asset not in known:
        raise NotFound(f"no {what} file {asset}")
    text, content_type = read(asset)
    return Response(body=text, status_code=200, headers=_page_headers(content_type, cache=cache, csp=csp))


@app.route("/dashboard", methods=["GET"])
@api_errors
def dashboard() -> Response:
    """The dashboard (static files; it signs in with an API key and calls this API)."""
    query()
    return Response(body=dashboard_page(), status_code=200,
                    headers=_page_headers("text/html; charset=utf-8", cache="no-cache"))


@app.route("/dashboard/{asset}", methods=["GET"])
@api_errors
def dashboard_file(asset: str) -> Response:
    return _static_file(asset, DASHBOARD_ASSETS, dashboard_asset, "dashboard", cache="no-cache")
