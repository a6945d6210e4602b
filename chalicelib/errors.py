"""The exception tree: one root, a few meaningful children.

``app.py`` maps these to HTTP in one helper; the worker maps them to job
outcomes. Third-party exceptions are translated at adapter boundaries with
``raise ... from err``.
"""
from __future__ import annotations

from dataclasses import dataclass


class RenderError(Exception):
    """Root of every error this project raises on purpose."""

    http_status = 500
    code = "internal_error"


class ConfigError(RenderError):
    """A setting is missing or malformed."""

    code = "config_error"


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class ValidationError(RenderError):
    """The request is malformed; carries one problem per bad field."""

    http_status = 400
    code = "validation_error"

    def __init__(self, problems: list[FieldProblem], message: str | None = None) -> None:
        self.problems = problems
        summary = "; ".join(f"{p.field}: {p.reason}" for p in problems)
        super().__init__(message or f"invalid request: {summary}")


class BadRequest(RenderError):
    http_status = 400
    code = "bad_request"


class PayloadTooLarge(RenderError):
    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RenderError):
    http_status = 415
    code = "unsupported_media_type"


class NotFound(RenderError):
    http_status = 404
    code = "not_found"


class Conflict(RenderError):
    http_status = 409
    code = "conflict"


class NotReady(Conflict):
    """The job has no result yet; carries its current status."""

    code = "not_ready"

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(RenderError):
    http_status = 401
    code = "unauthorized"


class Forbidden(RenderError):
    http_status = 403
    code = "forbidden"


class RateLimited(RenderError):
    """Too many requests for this key; ``retry_after_s`` says when the next one is allowed."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, *, retry_after_s: float, limit: int, reset_s: float) -> None:
        super().__init__(f"rate limit exceeded; retry after {max(1, round(retry_after_s + 0.5))} s")
        self.retry_after_s = retry_after_s
        self.limit = limit
        self.reset_s = reset_s


class BudgetExceeded(RenderError):
    """The key's GPU seconds for today (UTC) are spent, counting its queued and running jobs."""

    http_status = 429
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFull(RenderError):
    """The key has as many queued jobs as it may."""

    http_status = 429
    code = "too_many_queued_jobs"


class Unavailable(RenderError):
    """A backing service (Redis, the queue, storage) cannot be reached."""

    http_status = 503
    code = "service_unavailable"


class QueueUnavailable(Unavailable):
    code = "queue_unavailable"


class StoreUnavailable(Unavailable):
    code = "store_unavailable"


class StorageError(RenderError):
    code = "storage_error"


class EngineError(RenderError):
    """A job could not be rendered. ``retryable`` tells the runner whose fault it was."""

    code = "engine_error"
    retryable = False


class InputError(EngineError):
    """The caller's fault: an input cannot be fetched or decoded. Never retried."""

    code = "input_error"


class NodeError(EngineError):
    """The GPU node's fault (refused, 5xx, protocol error). Retried on another attempt."""

    code = "node_error"
    retryable = True


class Cancelled(RenderError):
    """Raised inside an engine when the job was cancelled or ran out of time."""

    code = "cancelled"
