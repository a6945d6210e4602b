"""Errors: each API refusal as a typed exception carrying the API's ``{"error": {code, message, fields}}``."""
from __future__ import annotations

from typing import Any


class C3RenderError(Exception):
    """Anything this client raises."""


class Misconfigured(C3RenderError):
    """The caller's own setup is wrong, before any API call: no API URL, not a URL, a local input file
    that does not exist."""


class ConnectionFailed(C3RenderError):
    """The API could not be reached (after the retries)."""


class APIError(C3RenderError):
    """The API refused a request. ``status`` is the HTTP status; ``code``, ``message`` and ``fields``
    (``[{"field", "reason"}]``) are the API's own error body."""

    def __init__(self, status: int, code: str, message: str, *, fields: list[dict[str, str]] | None = None,
                 body: Any = None, retry_after_s: float | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.body = body
        self.retry_after_s = retry_after_s
        details = "; ".join(f"{f.get('field')}: {f.get('reason')}" for f in self.fields)
        super().__init__(f"{status} {code}: {message}" if not details or details in message
                         else f"{status} {code}: {message} ({details})")


class BadRequest(APIError):
    """400: a field is invalid (see ``fields``)."""


class Unauthorized(APIError):
    """401: no API key, or not a valid one."""


class Forbidden(APIError):
    """403."""


class NotFound(APIError):
    """404: no such job (or another key's)."""


class Conflict(APIError):
    """409: not finished yet, or an Idempotency-Key reused with another body."""


class Gone(APIError):
    """410: a result link that has expired."""


class PayloadTooLarge(APIError):
    """413."""


class RateLimited(APIError):
    """429 that clears soon (the key's request rate): retried by the client until it gives up."""


class QueueFull(APIError):
    """429 ``too_many_queued_jobs``: the key has as many queued jobs as it may (not retried)."""


class BudgetExceeded(APIError):
    """429 ``budget_exceeded``: the key's GPU budget for today is spent (not retried; ``retry_after_s``
    says when it resets)."""


class Unavailable(APIError):
    """503: Redis or the queue is down (retried until the client gives up)."""


_BY_STATUS: dict[int, type[APIError]] = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         409: Conflict, 410: Gone, 413: PayloadTooLarge, 429: RateLimited,
                                         503: Unavailable}
_BY_CODE: dict[str, type[APIError]] = {"too_many_queued_jobs": QueueFull, "budget_exceeded": BudgetExceeded,
                                       "upload_quota_exceeded": QueueFull}


def from_response(status: int, body: Any, retry_after_s: float | None = None) -> APIError:
    """The exception for an error answer (the API's shape, or the first version's ``{"error": "..."}``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, fields = str(error.get("code", "error")), str(error.get("message", "")), error.get("fields")
    else:
        code, message, fields = "error", str(error if error is not None else body), None
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, APIError)
    return cls(status, code, message, fields=fields if isinstance(fields, list) else None, body=body,
               retry_after_s=retry_after_s)


class JobFailed(C3RenderError):
    """``run()`` ended with a job that failed, was cancelled or timed out. ``job`` is its final view."""

    def __init__(self, job: Any) -> None:
        self.job = job
        super().__init__(f"job {job.get('id')} {job.get('status')}: {job.get('error') or 'no reason given'}")


class UnknownJobType(APIError):
    """The API serves no job type of that name (it answered 404, or another route's error); ``types``
    are the ones it serves, as its OpenAPI document lists them."""

    def __init__(self, job_type: str, types: list[str], answered: APIError) -> None:
        self.job_type = job_type
        self.types = types
        super().__init__(answered.status, answered.code,
                         f"unknown job type {job_type}; the types are: {', '.join(types)}", body=answered.body)


class AmbiguousJobId(C3RenderError):
    """A short id that starts the ids of several jobs. ``candidates`` are their views (at most
    ``CANDIDATES``; ``more``: there may be others)."""

    CANDIDATES = 10

    def __init__(self, prefix: str, candidates: list[Any]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        self.more = len(candidates) >= self.CANDIDATES
        count = f"at least {len(candidates)}" if self.more else str(len(candidates))
        super().__init__(f"{count} jobs have an id that starts with {prefix}: give more of the id")


class WaitTimeout(C3RenderError):
    """``wait()`` gave up before the job ended (the job goes on)."""


class WebhookVerificationError(C3RenderError):
    """A webhook whose signature or timestamp does not hold."""
