"""Compatibility mode ``v1``: the first version's behaviour, for the keys that ask for it.

The service replaces a first version already in production. Its clients send the documented
fields (they work for every key), but they were written against behaviour this API tightened.
A key created with ``--compat v1`` (or the first version's static ``C3_RENDER_KEY``) gets that
behaviour back; every other key keeps the strict API. What changes for such a key:

- parsing: numeric strings become numbers (it used ``float()``/``int()``), keys it does not know
  are ignored, reference audio sent with a voice other than ``clone`` is ignored;
- statuses: a status the service set itself where the first version said ``failed`` (the
  deadline passed, ``max_time`` exceeded, cancelled) reads ``failed``, the reason in ``error``;
  a status set with ``POST /job/{id}`` reads as it was set;
- answers: a submit is 200, an unfinished result 400 ``{"error": "Job not completed", "status"}``,
  a malformed id 400 ``Invalid job ID format``, and every error body ``{"error": "<message>"}``
  (app.py);
- ``POST /job/{id}`` ``{"status", "error"?, "remove_data"?}`` marks any job (service.mark).
"""
from __future__ import annotations

import re
from typing import Any

from chalicelib.errors import FieldProblem, ValidationError
from chalicelib.jobs.models import Job, JobStatus
from chalicelib.jobs.spec import JobSpec

V1 = "v1"
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
REFERENCE_FIELDS = ("reference_audio_url", "audio_url", "reference_text", "audio_text")
MARKS = (JobStatus.TIMED_OUT, JobStatus.CANCELLED, JobStatus.FAILED)
MAX_MARK_ERROR = 1000


def v1_body(spec: JobSpec, body: Any) -> Any:
    """A request body as the first version read it, ready for the spec's own checks."""
    if not isinstance(body, dict):
        return body
    read: dict[str, Any] = {}
    for name, value in body.items():
        field = spec.names.get(name)
        if field is None:
            continue  # it ignored keys it did not know
        if isinstance(value, str) and field.kind in ("number", "integer"):
            value = _number(value, integer=field.kind == "integer")
        read[name] = value
    if spec.name == "csm" and read.get("voice") not in (None, "clone", "upload_voice"):
        for name in REFERENCE_FIELDS:  # a voice that does not clone: its references were ignored
            read.pop(name, None)
    return read


def _number(text: str, *, integer: bool) -> Any:
    """``int(text)`` / ``float(text)`` as Python reads them; the text itself when that fails (the spec's
    check then names the field)."""
    try:
        return int(text) if integer else float(text)
    except ValueError:
        return text


def valid_id(job_id: str) -> bool:
    return bool(UUID.fullmatch(job_id))


def v1_status(job: Job) -> tuple[str, str | None]:
    """``(status, error)`` as the first version reported them."""
    if job.marked or job.status not in (JobStatus.TIMED_OUT, JobStatus.CANCELLED):
        return job.status.value, job.error
    reason = job.error or job.status.value.replace("_", " ")
    prefix = "timed out" if job.status is JobStatus.TIMED_OUT else "cancelled"
    return JobStatus.FAILED.value, reason if reason.startswith(prefix) else f"{prefix}: {reason}"


def as_v1(view: dict[str, Any], job: Job) -> dict[str, Any]:
    """A job view (or result) with the first version's status and error."""
    status, error = v1_status(job)
    if status == job.status.value:
        return view
    return {**view, "status": status, "error": error}


def mark_request(body: Any) -> tuple[JobStatus, str, bool]:
    """``POST /job/{id}``'s body: ``(status, error, remove_data)``. Raises ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError([FieldProblem("body", "must be a JSON object")])
    problems: list[FieldProblem] = []
    allowed = {s.value: s for s in MARKS}
    given = body.get("status")
    status = allowed.get(given) if isinstance(given, str) else None
    if status is None:
        problems.append(FieldProblem("status", f"must be one of {', '.join(allowed)}"))
    error = body.get("error")
    if error is not None and (not isinstance(error, str) or len(error) > MAX_MARK_ERROR):
        problems.append(FieldProblem("error", f"must be a string of at most {MAX_MARK_ERROR} characters"))
    remove = body.get("remove_data", False)
    if not isinstance(remove, bool):
        problems.append(FieldProblem("remove_data", "must be true or false"))
    if problems or status is None:
        raise ValidationError(problems)
    return status, error or f"marked {status.value} by the client", bool(remove)
