"""API keys: created once (shown once), stored only as SHA-256 digests in Redis.

A request presents its key as ``Authorization: Bearer <key>``,
``X-C3-RENDER-KEY`` (the first version's header) or ``X-Api-Key``. The key's
record names its owner id (the tenant every job belongs to), its rate limit,
its cap on queued jobs, its webhook secret and whether it is an admin key.
Records are cached in-process for ``cache_s`` seconds, so a revocation takes
effect everywhere within that time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from chalicelib.errors import NotFound, StoreUnavailable, Unauthorized
from chalicelib.jobs.models import Admission, iso, now_s
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard

KEY_PREFIX = "c3r_"
COMPAT_MODES = ("", "v1")  # "": today's API; "v1": the first version's (parsing, statuses, error bodies)


_guard = RedisGuard(StoreUnavailable, "the key store (Redis)")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, from any of the accepted headers."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-c3-render-key") or headers.get("x-api-key") or None


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: float
    admin: bool
    rate_per_s: float
    burst: int
    max_queued: int
    webhook_secret: str
    revoked: bool = False
    gpu_seconds_per_day: float = 0.0  # the key's GPU budget per UTC day (0: none)
    compat: str = ""  # "v1": the first version's behaviour for this key's requests (docs/compatibility.md)
    previous_webhook_secret: str = ""  # after a rotation: still signs until previous_valid_until
    previous_valid_until: float = 0.0

    def signing_secrets(self, now: float) -> list[str]:
        """The secrets that sign this key's webhooks now: the current one, and during the overlap
        after a rotation the previous one too (each gives a ``v1,`` entry in webhook-signature)."""
        secrets_ = [self.webhook_secret] if self.webhook_secret else []
        if self.previous_webhook_secret and now < self.previous_valid_until:
            secrets_.append(self.previous_webhook_secret)
        return secrets_

    @property
    def admission(self) -> Admission:
        return Admission(rate_per_s=self.rate_per_s, burst=self.burst, max_queued=self.max_queued,
                         gpu_seconds_per_day=self.gpu_seconds_per_day)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": iso(self.created_at), "admin": self.admin,
                "rate_per_s": self.rate_per_s, "burst": self.burst, "max_queued": self.max_queued,
                "revoked": self.revoked, "compat": self.compat or None,
                "gpu_seconds_per_day": self.gpu_seconds_per_day or None}

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> ApiKey:
        return cls(id=data["id"], name=data.get("name", ""), created_at=float(data.get("created_at") or 0),
                   admin=data.get("admin") == "1", rate_per_s=float(data.get("rate_per_s") or 0),
                   burst=int(data.get("burst") or 1), max_queued=int(data.get("max_queued") or 0),
                   webhook_secret=data.get("webhook_secret", ""), revoked=data.get("revoked") == "1",
                   compat=data.get("compat", ""), gpu_seconds_per_day=float(data.get("gpu_seconds_per_day") or 0),
                   previous_webhook_secret=data.get("previous_webhook_secret", ""),
                   previous_valid_until=float(data.get("previous_valid_until") or 0))


class KeyStore:
    def __init__(self, client: redis.Redis, *, cache_s: float = 5.0) -> None:
        self.redis = client
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, *, name: str, admin: bool = False, rate_per_s: float = 20.0, burst: int = 40,
               max_queued: int = 1000, compat: str = "", key: str | None = None,
               gpu_seconds_per_day: float = 0.0) -> tuple[str, ApiKey]:
        """Returns ``(the key, its record)``; the key itself is not kept anywhere. ``key``: record one
        that exists already (the first version's C3_RENDER_KEY) instead of making a new one; its id
        is then derived from it, so importing it twice gives the same record."""
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be empty or one of {', '.join(m for m in COMPAT_MODES if m)}")
        key_id = "key_" + (digest(key)[:12] if key else secrets.token_hex(6))
        key = key or KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(id=key_id, name=name, created_at=now_s(), admin=admin, rate_per_s=rate_per_s, burst=burst,
                        max_queued=max_queued, webhook_secret=new_webhook_secret(), compat=compat,
                        gpu_seconds_per_day=gpu_seconds_per_day)
        fields = {"id": record.id, "name": name, "created_at": record.created_at, "admin": "1" if admin else "0",
                  "rate_per_s": rate_per_s, "burst": burst, "max_queued": max_queued,
                  "webhook_secret": record.webhook_secret, "revoked": "0", "compat": compat,
                  "gpu_seconds_per_day": gpu_seconds_per_day}

        def run() -> bool:
            if not self.redis.set(keys.api_key_id(record.id), digest(key), nx=True):
                return False
            pipe = self.redis.pipeline()
            pipe.hset(keys.api_key(digest(key)), mapping={k: str(v) for k, v in fields.items()})
            pipe.zadd(keys.API_KEYS, {record.id: record.created_at})
            pipe.execute()
            return True
        if not _guard(run):
            return key, self.get(record.id)  # imported before: the record as it is
        return key, record

    def _by_digest(self, key_digest: str) -> ApiKey | None:
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(keys.api_key(key_digest))))
        return ApiKey.from_hash(data) if data else None

    def get(self, key_id: str) -> ApiKey:
        key_digest = _guard(lambda: self.redis.get(keys.api_key_id(key_id)))
        record = self._by_digest(str(key_digest)) if key_digest else None
        if record is None:
            raise NotFound(f"no API key {key_id}")
        return record

    def list(self) -> list[ApiKey]:
        ids = _guard(lambda: self.redis.zrange(keys.API_KEYS, 0, -1))
        return [self.get(str(key_id)) for key_id in ids]

    def revoke(self, key_id: str) -> ApiKey:
        key_digest = _guard(lambda: self.redis.get(keys.api_key_id(key_id)))
        if not key_digest:
            raise NotFound(f"no API key {key_id}")
        _guard(lambda: self.redis.hset(keys.api_key(str(key_digest)), "revoked", "1"))
        return self.get(key_id)

    def rotate_secret(self, key_id: str, *, overlap_s: float) -> ApiKey:
        """Give the key a new webhook secret; the old one keeps signing (beside it) for ``overlap_s``.

        Raises :class:`NotFound`.
        """
        record = self.get(key_id)
        key_digest = _guard(lambda: self.redis.get(keys.api_key_id(key_id)))
        _guard(lambda: self.redis.hset(keys.api_key(str(key_digest)), mapping={
            "webhook_secret": new_webhook_secret(), "previous_webhook_secret": record.webhook_secret,
            "previous_valid_until": now_s() + overlap_s}))
        with self._lock:
            self._cache.pop(str(key_digest), None)
        return self.get(key_id)

    def authenticate(self, key: str | None) -> ApiKey:
        """The live record for ``key``. Raises :class:`Unauthorized` (missing, unknown or revoked)."""
        if not key:
            raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
        key_digest = digest(key)
        now = time.monotonic()
        cached = self._cache.get(key_digest)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            record = self._by_digest(key_digest)
            with self._lock:
                if len(self._cache) > 10000:
                    self._cache.clear()
                self._cache[key_digest] = (now + self.cache_s, record)
        if record is None or record.revoked:
            raise Unauthorized("the API key is not valid (unknown or revoked)")
        return record


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def static_admin(key: str | None, configured: str | None) -> bool:
    """True when ``key`` is the configured ADMIN_API_KEY (compared in constant time)."""
    return bool(key and configured and hmac.compare_digest(key.encode(), configured.encode()))
