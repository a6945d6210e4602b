"""Standard Webhooks signing and the seed's payload shape.

Signature: ``v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>``; the
secret is ``whsec_<base64>`` (a bare string is used as raw bytes). Several
space-separated signatures are sent during key rotation.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from chalicelib.jobs.models import Job, JobStatus

USER_AGENT = "c3-render-webhooks/1.0"


def secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,`` entry per secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    entries = []
    for secret in secrets:
        digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
        entries.append("v1," + base64.b64encode(digest).decode())
    return " ".join(entries)


def payload(job: Job, event: str, presign: Callable[[str], str]) -> dict[str, Any]:
    """The webhook body, with the job's ``metadata`` when it has some."""
    body = _body(job, event, presign)
    if job.metadata is not None:
        body["metadata"] = job.metadata
    return body


def _body(job: Job, event: str, presign: Callable[[str], str]) -> dict[str, Any]:
    """The seed's body: ``id``, ``status`` and ``result_url`` | ``text`` | ``error``.

    ``started`` events send ``status: running``; ``progress`` ones the job's status and
    ``progress``. Cancelled and timed-out jobs are reported as ``failed`` with an ``error``
    saying which, as the seed knows only success and failed.
    """
    if event == "started":
        return {"id": job.id, "status": "running"}
    if event.startswith("progress"):
        return {"id": job.id, "status": job.status.value, "progress": job.progress or 0.0}
    if job.status is JobStatus.SUCCESS:
        result = job.result or {}
        if result.get("key"):  # a file result (csm, portrait)
            return {"id": job.id, "status": "success", "result_url": presign(str(result["key"]))}
        return {"id": job.id, "status": "success", "text": str(result.get("text", ""))}
    error = job.error or job.status.value
    if job.status is JobStatus.TIMED_OUT and not error.startswith("timed out"):
        error = f"timed out: {error}"
    return {"id": job.id, "status": "failed", "error": error}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
