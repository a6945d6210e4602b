"""Links to result files that last ``RESULT_URL_TTL_S`` (7 days), whatever signs the bucket's URLs.

A presigned S3 URL dies with the credentials that signed it: an hour on a Lambda role or
under IRSA, however far its expiry. A webhook consumer stores the ``result_url`` it gets,
so that one is instead a link to the API, ``<PUBLIC_API_URL>/files/<token>``: the token
names the object and its expiry, signed with HMAC-SHA256 by the service's own secret, and
the API answers it with a redirect to a URL presigned that moment.

Token: ``base64url("<object key>\\n<expiry unix s>")`` ``.`` ``base64url(HMAC(secret, that))``.
The secret is ``FILE_LINK_SECRET``, or one made once and kept in Redis for every process.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import redis

from chalicelib.errors import NotFound, RenderError, StoreUnavailable
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard

_guard = RedisGuard(StoreUnavailable, "the link secret (Redis)")


class LinkExpired(RenderError):
    http_status = 410
    code = "link_expired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FileLinks:
    def __init__(self, client: redis.Redis, *, secret: str | None, base_url: str | None, ttl_s: int) -> None:
        self.redis = client
        self._secret = secret.encode() if secret else None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.ttl_s = ttl_s

    def secret(self) -> bytes:
        """The configured secret, or the one kept in Redis (made by whichever process needed it first)."""
        if self._secret is None:
            def run() -> bytes:
                self.redis.set(keys.FILE_LINK_SECRET, secrets.token_hex(32), nx=True)
                return str(self.redis.get(keys.FILE_LINK_SECRET)).encode()
            self._secret = _guard(run)
        return self._secret

    def token(self, key: str, *, now: float | None = None) -> str:
        """A token for the object ``key``, good for RESULT_URL_TTL_S from ``now``."""
        payload = f"{key}\n{int((now or time.time()) + self.ttl_s)}".encode()
        return f"{_b64(payload)}.{_b64(hmac.new(self.secret(), payload, hashlib.sha256).digest())}"

    def link(self, key: str) -> str | None:
        """The lasting link for ``key``, or None when PUBLIC_API_URL is not set."""
        return f"{self.base_url}/files/{self.token(key)}" if self.base_url else None

    def resolve(self, token: str, *, now: float | None = None) -> str:
        """The object key a token names. Raises :class:`NotFound` (not one of ours) or
        :class:`LinkExpired` (410)."""
        try:
            payload_text, signature = token.split(".", 1)
            payload = _unb64(payload_text)
            given = _unb64(signature)
        except (ValueError, TypeError) as err:
            raise NotFound("no such file link") from err
        if not hmac.compare_digest(given, hmac.new(self.secret(), payload, hashlib.sha256).digest()):
            raise NotFound("no such file link")
        key, _, expiry = payload.decode(errors="replace").rpartition("\n")
        if not expiry.isdigit() or int(expiry) < (now or time.time()):
            raise LinkExpired("this link has expired; GET /result/{id} gives a fresh one while the job is kept")
        return key
