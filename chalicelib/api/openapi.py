"""The OpenAPI 3.1 document: every operation, from one table, and the schemas that validate requests.

``OPERATIONS`` lists each route and method once: its query parameters (``query_names`` gives the
API the names it accepts, so an undocumented parameter is a 400), headers, body, answers and every
error status it can give. Request bodies are the job types' own schemas (chalicelib/jobs/spec.py),
rules between fields included; limits that are settings (wait, upload sizes) are filled in from
the settings the API runs with. What no schema can say (the SSRF guard, whose uploads and voices
a key may use, the size of ``metadata`` as JSON) is said in the descriptions and answered 400.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from chalicelib.api.docs import DASHBOARD_ASSETS
from chalicelib.api.files import UPLOAD_FIELDS, VOICE_FIELDS
from chalicelib.api.jobs import IDEMPOTENCY_KEY_PATTERN, LIST_LIMIT_MAX, job_defaults
from chalicelib.jobs.models import JobStatus
from chalicelib.jobs.schemas import fields_schema
from chalicelib.jobs.spec import Catalog
from chalicelib.settings import Settings

JSON = "application/json"
ISO_TIME = {"type": "string", "format": "date-time"}
ISO_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
JOB_ID = {"type": "string", "format": "uuid"}
TOKEN_PATTERN = "^[A-Za-z0-9_-]{1,2000}\\.[A-Za-z0-9_-]{43}$"
CURSOR_PATTERN = "^[0-9]{1,18}$"
UPLOAD_ID_PATTERN = "^up_[0-9a-f]{16}$"
VOICE_ID_PATTERN = "^voice_[0-9a-f]{12}$"
DOC_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-init.js")
# Errors every keyed operation can answer, and what each means there.
KEYED_ERRORS = {
    400: "A query parameter that is unknown, given twice or malformed (each named in `error.fields`).",
    401: "No API key, or not a valid one (`Authorization: Bearer`, `X-Api-Key` or `X-C3-RENDER-KEY`).",
    429: "The key's rate limit (RateLimit-* headers, Retry-After); a client that keeps sending invalid or "
         "unauthenticated requests is slowed down the same way.",
    503: "Redis or the queue is unavailable; try again after Retry-After.",
}
BODY_ERRORS = {
    400: "The body is not a JSON object (nor JSON: NaN, Infinity and unpaired surrogates are not; nor nested more "
         "than about 900 levels deep), or a field is invalid: every one is named with its reason in `error.fields`.",
    413: "The body is larger than 64 KiB (8 MiB when it carries a `data:` URI).",
    415: "The body is not `application/json`.",
}
PUBLIC_ERRORS = {400: "A query parameter that is unknown or given twice."}
# What the HTTP server (gunicorn) answers itself, before the API, to any request (JSON all the same).
SERVER_ERRORS = {
    414: "The request line (method, path and query) is longer than the HTTP server takes (4094 bytes).",
    431: "Too many request headers (more than 100), or one longer than 8190 bytes.",
}
SUBMIT_CHECKS = (
    "Checked beyond the schema, each a 400 naming the field: a URL the service must not reach (a private, "
    "loopback or link-local address, or a host outside URL_ALLOW_HOSTS: the SSRF guard); an upload "
    "(`upload://`) or `voice_id` that is not this key's, or has expired or was never uploaded; `metadata` "
    "over 4 KiB as JSON.")


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "query" | "header" | "path"
    schema: dict[str, Any] | Callable[[DocContext], dict[str, Any]]
    description: str
    required: bool = False

    def render(self, ctx: DocContext) -> dict[str, Any]:
        schema = self.schema(ctx) if callable(self.schema) else self.schema
        return {"name": self.name, "in": self.where, "required": self.required or self.where == "path",
                "description": self.description, "schema": schema}


@dataclass(frozen=True)
class Answer:
    description: str
    schema: str | None = None  # a component name; None: no body
    media: str | tuple[str, ...] = JSON  # a body's media type (or types, with no schema: text)
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    op_id: str
    summary: str
    answers: dict[int, Answer]
    errors: dict[int, str] = field(default_factory=dict)
    description: str = ""
    params: tuple[Param, ...] = ()
    body: str | None = None  # a request schema's component name
    public: bool = False
    tag: str = "jobs"

    def __post_init__(self) -> None:
        named = {p.name for p in self.params if p.where == "path"}
        wanted = set(re.findall(r"\{(\w+)\}", self.path))
        if named != wanted:
            raise ValueError(f"{self.method} {self.path}: path parameters {sorted(wanted)}, described {sorted(named)}")

    @property
    def query(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.where == "query")


@dataclass(frozen=True)
class DocContext:
    """What the document depends on besides the code: the job types served and some settings."""

    catalog: Catalog
    max_wait_s: int
    max_audio_bytes: int
    max_image_bytes: int
    defaults: dict[str, int] = field(default_factory=dict)  # complete_in, max_time when not given

    @classmethod
    def of(cls, catalog: Catalog, settings: Settings) -> DocContext:
        return cls(catalog, max_wait_s=settings.max_wait_s, max_audio_bytes=settings.max_audio_bytes,
                   max_image_bytes=settings.max_image_bytes, defaults=job_defaults(settings))


def _path(name: str, schema: dict[str, Any], description: str) -> Param:
    return Param(name, "path", schema, description, required=True)


JOB = _path("job_id", JOB_ID, "The job's id, as its submit returned it.")
WAIT = Param("wait", "query", lambda ctx: {"type": "integer", "minimum": 0, "maximum": ctx.max_wait_s},
             "Seconds to wait for the job to end (events: for a new event) before answering; up to MAX_WAIT_S.")
PREFER = Param("Prefer", "header", {"type": "string"},
               "`wait=N` (RFC 7240): answer when the job ends, within N seconds (up to MAX_WAIT_S): 200 with "
               "its result; 202 when it has not ended by then. Other preferences are ignored.")
IDEMPOTENCY = Param("Idempotency-Key", "header", {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                    "Same key and body within a day return the original job (200, Idempotent-Replayed); the "
                    "same key with another body is a 409. Printable ASCII, 1-255 characters.")
RETRY_IDEMPOTENCY = replace(IDEMPOTENCY, description="The same key again within a day returns the retry made "
                            "the first time (200, Idempotent-Replayed): a retry sent twice makes one job.")
RATE = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def _job_routes() -> tuple[Operation, ...]:
    one = {404: "No such job (or another key's)."}
    return (
        Operation("get", "/status/{job_id}", "get_status", "A job's status (the same as GET /jobs/{job_id})",
                  {200: Answer("The job.", "Job", headers=RATE)}, one, params=(JOB, WAIT)),
        Operation("get", "/jobs/{job_id}", "get_job", "A job: status, progress, input, node, GPU seconds",
                  {200: Answer("The job.", "Job", headers=RATE)}, one, params=(JOB, WAIT),
                  description="With `?wait=N`, answered as soon as the job ends, or after N seconds as it "
                              "is then."),
        Operation("delete", "/jobs/{job_id}", "delete_job", "Cancel a job if it runs, then delete it",
                  {204: Answer("Deleted: its record, outputs, timeline, webhook deliveries and idempotency "
                               "entry. Later reads are 404.", headers=RATE)}, one, params=(JOB,)),
        Operation("post", "/jobs/{job_id}/retry", "retry_job", "A new job with the input of an ended one",
                  {202: Answer("Queued; `retry_of` links back to the job retried.", "Job",
                               headers=("Location", *RATE)),
                   200: Answer("An Idempotency-Key replay: the retry made the first time (the job as it is now).",
                               "Job", headers=("Location", "Idempotent-Replayed", *RATE))},
                  {**one, 400: "Its inputs are no longer usable (an upload expired, say): the field is named; "
                               "or the Idempotency-Key is malformed.",
                   409: "The job is queued, running or succeeded: only failed, cancelled or timed-out jobs "
                        "are retried; or the Idempotency-Key was used for another request.",
                   429: "The key's rate limit, its cap of queued jobs, or its GPU budget for today "
                        "(Retry-After)."},
                  params=(JOB, RETRY_IDEMPOTENCY)),
        Operation("get", "/jobs/{job_id}/events", "get_job_events", "A job's timeline",
                  {200: Answer("Events after `after`, oldest first, and the cursor for the next call.",
                               "Events", headers=RATE)},
                  {**one, 400: "`after` or `wait` is malformed, or an unknown query parameter."},
                  params=(JOB, Param("after", "query", {"type": "string", "pattern": "^[0-9]{1,9}$"},
                                     "Only events after this cursor (`next` of an earlier answer)."), WAIT),
                  description="Queued, started (node, attempt), inputs fetched (sizes, durations), node "
                              "acquired or launched, progress, output stored, retry (why), finished (status, "
                              "error). With `?wait=N`, a long poll: answered as soon as there is a new event."),
        Operation("get", "/result/{job_id}", "get_result", "The result of an ended job",
                  {200: Answer("`result_url` (files, signed now) or `text`, with the type's extra fields; "
                               "`error` for a failed, cancelled or timed-out job.", "Result", headers=RATE)},
                  {**one, 409: "Not ended yet: `error.code` is `not_ready`, `error.status` the job's status "
                               "(Retry-After)."}, params=(JOB,)),
        Operation("post", "/jobs/{job_id}/cancel", "cancel_job", "Cancel a job",
                  {200: Answer("The job, and `cancel`: cancelled (it was queued), cancelling (it runs: its "
                               "worker stops it) or already_finished.", "Job", headers=RATE)}, one,
                  params=(JOB,)),
        Operation("get", "/jobs/{job_id}/webhooks", "get_job_webhooks", "A job's webhook deliveries",
                  {200: Answer("Each delivery with every attempt (time, status code or error, duration).",
                               "Deliveries", headers=RATE)}, one, params=(JOB,), tag="webhooks"),
        Operation("post", "/jobs/{job_id}/webhooks/redeliver", "redeliver_job_webhook",
                  "Send an ended job's completion webhook again (same webhook-id)",
                  {202: Answer("Queued for delivery.", "Deliveries", headers=RATE)},
                  {**one, 409: "The job has not ended, or has no notify_url."}, params=(JOB,), tag="webhooks"),
    )


def _other_routes() -> tuple[Operation, ...]:
    return (
        Operation("get", "/jobs", "list_jobs", "Jobs of this key, newest first",
                  {200: Answer("A page of jobs; `next_cursor` gives the next (null at the end).", "JobPage",
                               headers=RATE)},
                  {400: "A filter is malformed (each named), or an unknown query parameter."},
                  params=(
                      Param("status", "query", {"type": "string", "enum": [s.value for s in JobStatus]},
                            "Only jobs with this status."),
                      Param("type", "query", lambda ctx: {"type": "string", "enum": ctx.catalog.names()},
                            "Only jobs of this type."),
                      Param("limit", "query",
                            {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX, "default": 20},
                            "Jobs per page."),
                      Param("cursor", "query", {"type": "string", "pattern": CURSOR_PATTERN},
                            "`next_cursor` of the page before."),
                      Param("created_after", "query", {"type": "string", "format": "date-time"},
                            "Only jobs created at or after this RFC 3339 time."),
                      Param("created_before", "query", {"type": "string", "format": "date-time"},
                            "Only jobs created before this RFC 3339 time."),
                      Param("id_prefix", "query", {"type": "string", "pattern": "^[0-9a-f-]{1,36}$"},
                            "Only jobs whose id starts with this (a short id, as `c3render jobs` shows it)."))),
        Operation("post", "/uploads", "create_upload", "Upload a file for a job's input",
                  {201: Answer("PUT the bytes to `upload_url` (straight to the bucket, with `upload_headers`), "
                               "then give `url` to any input field of the right kind.", "UploadCreated",
                               headers=RATE)},
                  {**BODY_ERRORS, 429: "The key's rate limit, or its uploads for today (UPLOADS_PER_KEY_PER_DAY)."},
                  body="UploadRequest", tag="files"),
        Operation("get", "/uploads/{upload_id}", "get_upload", "An upload, and whether its bytes arrived",
                  {200: Answer("The upload.", "UploadStatus", headers=RATE)},
                  {404: "No such upload of this key (or it expired)."},
                  params=(_path("upload_id", {"type": "string", "pattern": UPLOAD_ID_PATTERN}, "The upload's id."),),
                  tag="files"),
        Operation("post", "/voices", "create_voice", "Add a voice to this key's library",
                  {201: Answer("The voice: use `voice_id` on /csm or /portrait.", "Voice", headers=RATE)},
                  {**BODY_ERRORS, 400: BODY_ERRORS[400] + " Also: the clip cannot be fetched or is not audio, an "
                   "upload that is not this key's, a URL the SSRF guard refuses."},
                  body="VoiceRequest", tag="voices",
                  description="The clip is copied into the bucket: a voice outlives the URL it came from."),
        Operation("get", "/voices", "list_voices", "This key's voices",
                  {200: Answer("The voices.", "VoiceList", headers=RATE)}, tag="voices"),
        Operation("get", "/voices/{voice_id}", "get_voice", "A voice",
                  {200: Answer("The voice.", "Voice", headers=RATE)}, {404: "No such voice of this key."},
                  params=(_path("voice_id", {"type": "string", "pattern": VOICE_ID_PATTERN}, "The voice's id."),),
                  tag="voices"),
        Operation("delete", "/voices/{voice_id}", "delete_voice", "Delete a voice and its clip",
                  {204: Answer("Deleted.", headers=RATE)}, {404: "No such voice of this key."},
                  params=(_path("voice_id", {"type": "string", "pattern": VOICE_ID_PATTERN}, "The voice's id."),),
                  tag="voices"),
        Operation("get", "/files/{token}", "get_file", "A lasting result link (no key: the link is the credential)",
                  {302: Answer("Location: the file, presigned now.", headers=("Location",))},
                  {**PUBLIC_ERRORS, 404: "Not a link of this service, or its job's results were deleted.",
                   410: "The link has expired (RESULT_URL_TTL_S after it was made).",
                   503: "Redis or the bucket is unavailable."},
                  params=(_path("token", {"type": "string", "pattern": TOKEN_PATTERN}, "The link's token."),),
                  public=True, tag="files"),
        Operation("get", "/nodes", "list_nodes", "GPU nodes of the shared pool (admin keys)",
                  {200: Answer("Every node: state, jobs running, jobs run, GPU seconds, times.", "Nodes",
                               headers=RATE)}, {403: "Not an admin key."}, tag="admin"),
        Operation("get", "/usage", "get_usage", "GPU usage and cost per UTC day",
                  {200: Answer("The jobs that ended on a worker, their GPU seconds and cost, per key and day; "
                               "the key's GPU budget for today with what is used, pending and left.", "Usage",
                               headers=RATE)},
                  {400: "`from` or `to` is not a date, or an unknown query parameter."},
                  params=(Param("from", "query", {"type": "string", "format": "date"},
                                "First day (UTC), inclusive; default: `to`, or today."),
                          Param("to", "query", {"type": "string", "format": "date"},
                                "Last day (UTC), inclusive; default: today.")),
                  description="The calling key's usage; an admin key's covers every key. Days more than 400 "
                              "days back, or after today, are empty.", tag="keys"),
        Operation("get", "/me", "get_me", "The calling key: id, name, limits",
                  {200: Answer("The key.", "Key", headers=RATE)}, tag="keys"),
        Operation("get", "/me/webhook-secret", "get_webhook_secret", "The secret that signs this key's webhooks",
                  {200: Answer("The secret, and the previous one while it still verifies.", "WebhookSecret",
                               headers=RATE)},
                  {409: "The caller has no key record (the static admin key): WEBHOOK_SECRET signs."}, tag="keys"),
        Operation("post", "/me/webhook-secret", "rotate_webhook_secret", "Rotate this key's webhook secret",
                  {200: Answer("The new secret; the old one keeps verifying for WEBHOOK_SECRET_OVERLAP_S.",
                               "WebhookSecret", headers=RATE)},
                  {409: "The caller has no key record (the static admin key): WEBHOOK_SECRET signs."}, tag="keys"),
        Operation("get", "/health", "health", "Redis, queue depth and live workers",
                  {200: Answer("Healthy.", "Health")},
                  {**PUBLIC_ERRORS, 503: "A backend is down (the body says which)."}, public=True, tag="service"),
        Operation("get", "/metrics", "metrics", "Prometheus metrics",
                  {200: Answer("The exposition.", media="text/plain")},
                  {401: "METRICS_TOKEN is set and `Authorization: Bearer <METRICS_TOKEN>` was not sent."},
                  public=True, tag="service"),
        Operation("get", "/openapi.json", "openapi", "This document",
                  {200: Answer("The OpenAPI 3.1 document.", "Document")}, PUBLIC_ERRORS, public=True, tag="service"),
        Operation("get", "/docs", "docs", "Interactive documentation (Swagger UI)",
                  {200: Answer("The page.", media="text/html")}, PUBLIC_ERRORS, public=True, tag="service"),
        _page_files("/docs/{asset}", "docs_asset", "The documentation page's scripts and styles", DOC_ASSETS),
        Operation("get", "/dashboard", "dashboard", "The dashboard (sign in with an API key)",
                  {200: Answer("The page.", media="text/html")}, PUBLIC_ERRORS, public=True, tag="service"),
        _page_files("/dashboard/{asset}", "dashboard_asset", "The dashboard's script and styles", DASHBOARD_ASSETS),
        Operation("get", "/", "root", "The service, and where its documentation is",
                  {200: Answer("Running.", "Root")}, PUBLIC_ERRORS, public=True, tag="service"),
    )


def _page_files(path: str, op_id: str, summary: str, assets: tuple[str, ...]) -> Operation:
    """A page's own files, by name from a fixed list."""
    return Operation("get", path, op_id, summary, {200: Answer("The file.", media=("text/css", "text/javascript"))},
                     {**PUBLIC_ERRORS, 404: "No such file."},
                     params=(_path("asset", {"type": "string", "enum": list(assets)}, "The file."),),
                     public=True, tag="service")


def _submit(name: str, summary: str) -> Operation:
    return Operation(
        "post", f"/{name}", f"submit_{name}", summary,
        {202: Answer("Queued. Location points at its status.", "Job", headers=("Location", *RATE)),
         200: Answer("With `Prefer: wait=N`, the job ended within N seconds: the job and its result fields; "
                     "or an Idempotency-Key replay of an earlier submit (the job as it is now).", "JobEnded",
                     headers=("Location", "Preference-Applied", "Idempotent-Replayed", *RATE))},
        {**BODY_ERRORS, 400: BODY_ERRORS[400] + " " + SUBMIT_CHECKS,
         409: "The Idempotency-Key was used with another body.",
         429: "The key's rate limit, its cap of queued jobs, or its GPU budget for today (`budget_exceeded`: "
              "Retry-After says when it resets, at 00:00 UTC)."},
        params=(IDEMPOTENCY, PREFER), body=f"{name.capitalize()}Request")


OPERATIONS: tuple[Operation, ...] = _job_routes() + _other_routes()


@cache
def _query_table() -> dict[tuple[str, str], frozenset[str]]:
    return {(op.method.upper(), op.path): op.query for op in OPERATIONS}


def query_names(method: str, path: str) -> frozenset[str]:
    """The query parameters an operation takes (a submit route takes none)."""
    return _query_table().get((method.upper(), path), frozenset())


# -- schemas ------------------------------------------------------------------------------------

def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), *, extra: bool = False,
         description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(required),
                              "additionalProperties": extra}
    if description:
        schema["description"] = description
    return schema


def _str(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


ERROR = _obj({"error": _obj({
    "code": _str("Machine-readable: invalid_request, unauthorized, forbidden, not_found, not_ready, conflict, "
                 "gone, payload_too_large, unsupported_media_type, rate_limited, queue_full, unavailable ..."),
    "message": _str("What went wrong, for a person."),
    "status": _str("not_ready: the job's current status.", enum=[s.value for s in JobStatus]),
    "fields": {"type": "array", "description": "Every invalid field (body, query or header), with why.",
               "items": _obj({"field": _str("The field as sent."), "reason": _str("Why it was refused.")},
                             ("field", "reason"))}}, ("code", "message"))}, ("error",))

LINKS = _obj({"status": _str("GET: the job."), "result": _str("GET: its result."),
              "cancel": _str("POST: cancel it.")}, ("status", "result", "cancel"))

RESULT_FIELDS: dict[str, Any] = {
    "result_url": _str("csm, portrait: the file, presigned now (re-signed on every read).", format="uri"),
    "result_link": _str("The same file through this API (`GET /files/{token}`), lasting RESULT_URL_TTL_S; "
                        "set when PUBLIC_API_URL is.", format="uri"),
    "files": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"},
              "description": "More files by name (whisper: srt, vtt, txt, json), presigned now."},
    "text": _str("whisper: the transcript; analyze: the answer."),
    "error": _str("A failed, cancelled or timed-out job: why."),
    "segments": {"type": "array", "items": {"type": "object"}, "description": "whisper: timed segments."},
    "language": {"type": ["string", "null"], "description": "whisper: the language heard."},
    "duration_s": {"type": ["number", "null"], "minimum": 0, "description": "Seconds of audio or video."},
    "voice": _str("csm: the voice used."),
    "content_type": _str("The result file's media type."),
    "width": {"type": "integer", "description": "portrait: video width."},
    "height": {"type": "integer", "description": "portrait: video height."},
    "model": _str("analyze: the model that answered."),
    "metrics": _obj({"run_s": {"type": "number", "minimum": 0, "description": "Seconds the job ran."},
                     "node_s": {"type": "number", "minimum": 0, "description": "Seconds of it in calls to the "
                                "node."}}, extra=True, description="How the time went."),
}


def _job_schema(ctx: DocContext) -> dict[str, Any]:
    return _obj({
        "id": JOB_ID,
        "type": {"type": "string", "enum": ctx.catalog.names()},
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "created_at": ISO_TIME, "started_at": ISO_TIME_OR_NULL, "finished_at": ISO_TIME_OR_NULL,
        "attempt": {"type": "integer", "minimum": 0}, "max_attempts": {"type": "integer", "minimum": 1},
        "progress": {"type": "number", "minimum": 0, "maximum": 1, "description": "Exactly 1 once successful."},
        "queue_position": {"type": "integer", "minimum": 0, "description": "Jobs ahead of it (approximate), "
                           "while queued."},
        "error": _str("Why it failed, was cancelled or timed out."),
        "cancel_requested": {"type": "boolean", "description": "A cancel was asked for; the worker stops it."},
        "cancel": _str("POST .../cancel only: what the cancel did.",
                       enum=["cancelled", "cancelling", "already_finished"]),
        "cancel_outcome": _str("Only on a job whose cancel came too late: it was asked for while the job ran, "
                               "and the job finished (success or failed) before the worker stopped it.",
                               enum=["too_late"]),
        "webhook": _str("The completion webhook's delivery state.",
                        enum=["pending", "delivered", "failed", "gone", "blocked"]),
        "gpu_seconds": {"type": "number", "minimum": 0, "description": "GPU node time it used; 0 if it never "
                        "held a node."},
        "cost": {"type": ["number", "null"], "description": "Its GPU seconds at GPU_PRICE_PER_HOUR, recorded when "
                 "it ended (null: no price set, or not ended)."},
        "node": {"type": ["string", "null"], "description": "The GPU node it ran on (null: none)."},
        "input": {"type": "object", "description": "Its parameters as the worker uses them: aliases folded, "
                  "defaults applied, URL credentials redacted, inline data shown as the upload it became."},
        "metadata": {"type": "object", "description": "The client's, as submitted."},
        "retry_of": {**JOB_ID, "description": "The job this one retries."},
        "links": LINKS,
    }, ("id", "type", "status", "created_at", "links"))


def _schemas(ctx: DocContext) -> dict[str, Any]:
    job = _job_schema(ctx)
    upload = _obj({
        "id": _str("The upload's id.", pattern=UPLOAD_ID_PATTERN),
        "url": _str("What an input field takes.", pattern="^upload://up_[0-9a-f]{16}$"),
        "filename": _str("Its name, made safe."), "content_type": _str("Its media type."),
        "size": {"type": "integer", "minimum": 1}, "kind": _str("The inputs it serves.", enum=["audio", "image"]),
        "created_at": ISO_TIME, "expires_at": ISO_TIME},
        ("id", "url", "filename", "content_type", "size", "kind", "created_at", "expires_at"))
    voice = _obj({"voice_id": _str("Use it on /csm or /portrait.", pattern=VOICE_ID_PATTERN),
                  "name": _str("Its name."), "audio_text": _str("What the clip says."),
                  "content_type": _str("The clip's media type."), "size": {"type": "integer", "minimum": 0},
                  "created_at": ISO_TIME}, ("voice_id", "name", "audio_text", "content_type", "size", "created_at"))
    attempt = _obj({"at": ISO_TIME, "status_code": {"type": "integer"}, "error": _str("Why it did not arrive."),
                    "duration_ms": {"type": "number", "minimum": 0}}, extra=True)
    delivery = _obj({"id": _str("The webhook-id."), "event": _str("started or completed."),
                     "url": _str("Where it goes."),
                     "state": _str("Its state.", enum=["pending", "delivered", "failed", "gone", "blocked"]),
                     "attempts": {"type": "array", "items": attempt}}, ("id", "event", "url", "state", "attempts"))
    node = _obj({"node": _str("Its name."), "state": {"type": ["string", "null"]},
                 "busy": {"type": "integer", "minimum": 0}, "jobs_run": {"type": "integer", "minimum": 0},
                 "gpu_seconds": {"type": "number", "minimum": 0},
                 **{k: {"type": ["number", "null"], "description": "Unix seconds."}
                    for k in ("idle_since", "ready_at", "launched_at", "expires")},
                 "static": {"type": "boolean"}, "workload": {"type": ["string", "null"]}}, ("node",), extra=True)
    caps = {"image": ctx.max_image_bytes, "audio": ctx.max_audio_bytes}
    upload_request = fields_schema(UPLOAD_FIELDS)
    upload_request["allOf"] = [{  # Files.create_upload's cap by kind
        "if": {"properties": {"content_type": {"pattern": "^image/"}}},
        "then": {"properties": {"size": {"maximum": caps["image"]}}},
        "else": {"properties": {"size": {"maximum": caps["audio"]}}}}]
    schemas: dict[str, Any] = {
        "Error": ERROR,
        "Job": job,
        "JobEnded": {**job, "properties": {**job["properties"], **RESULT_FIELDS}, "additionalProperties": True,
                     "description": "A job and, once it has ended, its result fields (job types may add more)."},
        "Result": _obj({"id": JOB_ID, "type": {"type": "string"},
                        "status": {"type": "string", "enum": [s.value for s in JobStatus if s.terminal]},
                        **RESULT_FIELDS}, ("id", "type", "status"), extra=True,
                       description="Job types may add fields of their own."),
        "JobPage": _obj({"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                         "next_cursor": {"type": ["string", "null"], "pattern": CURSOR_PATTERN}},
                        ("jobs", "next_cursor")),
        "Events": _obj({
            "events": {"type": "array", "items": _obj({
                "seq": {"type": "integer", "minimum": 1}, "at": ISO_TIME, "type": _str(
                    "queued, started, inputs_fetched, node_acquired, node_launched, progress, output_stored, "
                    "retry, finished ..."), "message": _str("For a person.")}, ("seq", "at", "type", "message"),
                extra=True)},
            "next": _str("Give as `after` to read on.", pattern="^[0-9]{1,9}$")}, ("events", "next")),
        "Deliveries": _obj({"id": JOB_ID, "notify_url": {"type": ["string", "null"]},
                            "webhook": {"type": ["string", "null"]},
                            "deliveries": {"type": "array", "items": delivery}}, ("id", "deliveries")),
        "UploadRequest": upload_request,
        "UploadCreated": {**upload, "properties": {
            **upload["properties"], "upload_url": _str("PUT the bytes here (presigned).", format="uri"),
            "upload_headers": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "Send these headers with the PUT."}},
            "required": [*upload["required"], "upload_url", "upload_headers"]},
        "UploadStatus": {**upload, "properties": {**upload["properties"], "uploaded": {"type": "boolean"}},
                         "required": [*upload["required"], "uploaded"]},
        "VoiceRequest": fields_schema(VOICE_FIELDS),
        "Voice": voice,
        "VoiceList": _obj({"voices": {"type": "array", "items": voice}}, ("voices",)),
        "Key": _obj({"id": _str("The key's id (not the key)."), "name": _str("Its name."),
                     "created_at": ISO_TIME, "admin": {"type": "boolean"},
                     "rate_per_s": {"type": "number", "minimum": 0}, "burst": {"type": "integer", "minimum": 0},
                     "max_queued": {"type": "integer", "minimum": 0}, "revoked": {"type": "boolean"},
                     "gpu_seconds_per_day": {"type": ["number", "null"],
                                             "description": "The key's GPU budget per UTC day (null: none)."},
                     "compat": {"type": ["string", "null"], "enum": ["v1", None],
                                "description": "v1: the key gets the first version's behaviour "
                                               "(docs/compatibility.md)."}},
                    ("id", "admin")),
        "WebhookSecret": _obj({"webhook_secret": _str("whsec_..."), "previous_webhook_secret": _str("whsec_..."),
                               "previous_valid_until": ISO_TIME}, ("webhook_secret",)),
        "Nodes": _obj({"nodes": {"type": "array", "items": node}, "total": _obj({
            "billed_s": {"type": "number", "minimum": 0, "description": "Every node, stopped ones too."},
            "live_billed_s": {"type": "number", "minimum": 0},
            "spend": {"type": ["number", "null"], "description": "At GPU_PRICE_PER_HOUR (null: no price set)."},
            "billed_s_last_hour": {"type": "number", "minimum": 0},
            "max_node_seconds_per_hour": {"type": ["number", "null"]},
            "price_per_hour": {"type": ["number", "null"]}}, extra=True)}, ("nodes", "total")),
        "Usage": _obj({
            "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
            "price_per_hour": {"type": ["number", "null"]},
            "keys": {"type": "array", "items": _obj({
                "key_id": _str("The key (its owner id)."),
                "key_name": {"type": ["string", "null"],
                             "description": "The key's name; null for a deleted key or a v1 owner."},
                "jobs": {"type": "integer", "minimum": 0},
                "gpu_seconds": {"type": "number", "minimum": 0}, "cost": {"type": ["number", "null"]},
                "days": {"type": "array", "items": _obj({
                    "date": {"type": "string", "format": "date"}, "jobs": {"type": "integer", "minimum": 0},
                    "gpu_seconds": {"type": "number", "minimum": 0}, "cost": {"type": ["number", "null"]}},
                    ("date", "jobs", "gpu_seconds", "cost"))},
                "budget": _obj({"gpu_seconds_per_day": {"type": "number"}, "used_today": {"type": "number"},
                                "pending_gpu_seconds": {"type": "number"}, "remaining": {"type": "number"},
                                "resets_at": ISO_TIME})},
                ("key_id", "jobs", "gpu_seconds", "cost", "days"))},
            "total": _obj({"jobs": {"type": "number"}, "gpu_seconds": {"type": "number"},
                           "cost": {"type": ["number", "null"]}}, ("jobs", "gpu_seconds", "cost"))},
            ("from", "to", "price_per_hour", "keys", "total")),
        "Health": _obj({"status": _str("ok or unavailable.", enum=["ok", "unavailable"]),
                        "redis": _str("ok, or why not."),
                        "workers": _obj({"live": {"type": "integer", "minimum": 0}}, ("live",)),
                        "gpu_nodes": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "queue": _obj({"backend": _str("redis or sqs."), "depth": {"type": "integer"},
                                       "error": _str("Why the queue cannot be read.")}, ("backend",))},
                       ("status", "redis", "queue")),
        "Root": _obj({"status": _str("C3 Render API is running"), "timestamp": ISO_TIME,
                      "docs": _str("The interactive documentation."), "openapi": _str("This document.")},
                     ("status", "timestamp", "docs", "openapi")),
        "Document": {"type": "object", "required": ["openapi", "info", "paths"]},
    }
    for spec in ctx.catalog:
        schemas[f"{spec.name.capitalize()}Request"] = spec.json_schema(ctx.defaults)
    return schemas


# -- the document ---------------------------------------------------------------------------------

def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_HEADERS = {
    "Location": {"description": "Where the job (or file) is.", "schema": {"type": "string"}},
    "RateLimit-Limit": {"description": "Requests the key may make per window (its burst).",
                        "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Left in this window.", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until it is full again.", "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}},
    "Preference-Applied": {"description": "wait=N when Prefer: wait was honoured.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "true: this answers an earlier submit with the same key.",
                            "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "Bearer.", "schema": {"type": "string"}},
}
_ERROR_HEADERS = {401: ("WWW-Authenticate",), 409: ("Retry-After",), 429: ("Retry-After", *RATE),
                  503: ("Retry-After",)}


def _render(op: Operation, ctx: DocContext) -> dict[str, Any]:
    errors = {**SERVER_ERRORS, **(op.errors if op.public else {**KEYED_ERRORS, **op.errors})}
    if op.body:
        errors = {**BODY_ERRORS, **errors}
    responses: dict[str, Any] = {}
    for status, answer in op.answers.items():
        rendered: dict[str, Any] = {"description": answer.description}
        if answer.schema and isinstance(answer.media, str):
            rendered["content"] = {answer.media: {"schema": _ref(answer.schema)}}
        elif answer.media != JSON:
            media = (answer.media,) if isinstance(answer.media, str) else answer.media
            rendered["content"] = {m: {"schema": {"type": "string"}} for m in media}
        if answer.headers:
            rendered["headers"] = {h: _HEADERS[h] for h in answer.headers}
        responses[str(status)] = rendered
    for status, description in sorted(errors.items()):
        rendered = {"description": description, "content": {JSON: {"schema": _ref("Error")}}}
        if status in _ERROR_HEADERS:
            rendered["headers"] = {h: _HEADERS[h] for h in _ERROR_HEADERS[status]}
        responses[str(status)] = rendered
    operation: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary, "tags": [op.tag],
                                 "responses": responses}
    if op.description:
        operation["description"] = op.description
    if op.params:
        operation["parameters"] = [p.render(ctx) for p in op.params]
    if op.body:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(op.body)}}}
    if op.public:
        operation["security"] = []
    return operation


def _examples(ctx: DocContext) -> dict[str, dict[str, Any]]:
    return {spec.name: spec.example for spec in ctx.catalog if spec.example}


def build_openapi(version: str, ctx: DocContext) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    operations = [*(_submit(spec.name, spec.summary) for spec in ctx.catalog), *OPERATIONS]
    examples = _examples(ctx)
    for op in operations:
        rendered = _render(op, ctx)
        name = op.path.lstrip("/")
        if op.body and name in examples:
            rendered["requestBody"]["content"][JSON]["example"] = examples[name]
        paths.setdefault(op.path, {})[op.method] = rendered
    return {
        "openapi": "3.1.0",
        "info": {"title": "C3 Render API", "version": version,
                 "description": "Submit speech (csm), transcription (whisper), talking-portrait (portrait) and "
                                "image-analysis (analyze) jobs; wait for them (`Prefer: wait`), poll them, follow "
                                "their timeline, or receive a signed webhook (Standard Webhooks). Every error is "
                                "JSON: `{\"error\": {\"code\", \"message\", \"fields\"?}}`. A field given as "
                                "null is not given: its default applies."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}, {"renderKey": []}],
        "tags": [{"name": t} for t in ("jobs", "files", "voices", "webhooks", "keys", "admin", "service")],
        "paths": paths,
        "components": {
            "schemas": _schemas(ctx),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "renderKey": {"type": "apiKey", "in": "header", "name": "X-C3-RENDER-KEY",
                              "description": "The first version's header."}},
        },
    }

