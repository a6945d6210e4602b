"""Verifying the API's webhooks (Standard Webhooks: https://www.standardwebhooks.com)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from c3render_client.errors import WebhookVerificationError

TOLERANCE_S = 300  # a webhook-timestamp further than this from now is refused (replays)


def _secret_bytes(secret: str) -> bytes:
    """A ``whsec_`` secret is base64 (Standard Webhooks); any other string is used as it is, as the API does."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a body (one ``v1,<base64>`` entry)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()).decode()


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str | list[str], *,
                   tolerance_s: float = TOLERANCE_S, now: float | None = None) -> Any:
    """The webhook's JSON body once its signature holds for ``secret`` (or any of several, as during a
    rotation) and its timestamp is within ``tolerance_s`` of now. Raises :class:`WebhookVerificationError`.

    ``headers`` are the request's (any case): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.
    """
    raw = body.encode() if isinstance(body, str) else body
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id, stamp, signatures = (lowered[h] for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    except KeyError as missing:
        raise WebhookVerificationError(f"missing header {missing.args[0]}") from None
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not a number: {stamp!r}") from None
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        raise WebhookVerificationError(f"webhook-timestamp {timestamp} is more than {tolerance_s:.0f} s from now")
    given = [entry.split(",", 1)[1] for entry in signatures.split() if entry.startswith("v1,")]
    for candidate in [secret] if isinstance(secret, str) else secret:
        try:
            expected = sign(candidate, webhook_id, timestamp, raw).split(",", 1)[1]
        except (ValueError, TypeError):
            raise WebhookVerificationError("the whsec_ secret is not base64") from None
        if any(hmac.compare_digest(expected.encode(), g.encode("utf-8", "replace")) for g in given):
            try:
                return json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no signature matches the secret")
