"""Files clients give the service: uploads (presigned PUT straight to the bucket) and inline data URIs.

An upload is a record in Redis (``upload:<id>``: owner, object key, name, type, size, expiry)
and an object under ``uploads/<key id>/<upload id>/``. A job's input field takes it as
``upload://<id>``; the key that made it is the only one that can use it. It expires after
``UPLOAD_TTL_S`` unless a job holds it longer (until that job's deadline); the sweeper deletes
expired objects (``uploads:expiring``), and a bucket lifecycle rule does too where the store
applies one.
"""
from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis

from chalicelib.errors import FieldProblem, NotFound, QueueFull, StoreUnavailable, ValidationError
from chalicelib.files.storage import upload_key
from chalicelib.jobs.models import iso
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard

UPLOAD_SCHEME = "upload://"
DATA_SCHEME = "data:"
_ID = re.compile(r"^up_[0-9a-f]{16}$")
# What each kind of input field takes: audio fields take video too (its sound track is used).
MEDIA_TYPES = {"audio": ("audio/", "video/"), "image": ("image/",)}
_DATA_URI = re.compile(r"^data:([a-z0-9.+-]+/[a-z0-9.+-]+)((?:;[a-z0-9-]+=[^;,]*)*);base64,(.*)$", re.I | re.S)

_guard = RedisGuard(StoreUnavailable, "the upload store (Redis)")


class UploadQuotaExceeded(QueueFull):
    """The key made as many uploads today as it may."""

    code = "upload_quota_exceeded"


def kind_of(content_type: str) -> str | None:
    """The input kind a media type serves (audio, image), or None."""
    lowered = content_type.split(";")[0].strip().lower()
    return next((kind for kind, prefixes in MEDIA_TYPES.items() if lowered.startswith(prefixes)), None)


def safe_name(filename: str) -> str:
    """A file name fit for an object key: its last path part, odd characters replaced."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "file"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]


@dataclass(frozen=True)
class Upload:
    id: str
    owner: str
    key: str
    filename: str
    content_type: str
    size: int
    kind: str
    created_at: float
    expires_at: float

    @property
    def url(self) -> str:
        return f"{UPLOAD_SCHEME}{self.id}"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "filename": self.filename, "content_type": self.content_type,
                "size": self.size, "kind": self.kind, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at)}

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Upload:
        return cls(id=data["id"], owner=data["owner"], key=data["key"], filename=data["filename"],
                   content_type=data["content_type"], size=int(data["size"]), kind=data["kind"],
                   created_at=float(data["created_at"]), expires_at=float(data["expires_at"]))


@dataclass(frozen=True)
class DataUri:
    content_type: str
    data: bytes


def parse_data_uri(value: str, field: str, *, max_bytes: int) -> DataUri:
    """A ``data:<type>;base64,<data>`` URI, decoded. Raises :class:`ValidationError` naming ``field``."""
    found = _DATA_URI.match(value)
    if not found:
        raise ValidationError([FieldProblem(field, "a data URI must be data:<media type>;base64,<data>")])
    if len(found.group(3)) > (max_bytes + 2) * 4 // 3 + 4:
        raise ValidationError([FieldProblem(field, f"the data URI holds more than {max_bytes} bytes")])
    try:
        data = base64.b64decode(found.group(3), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValidationError([FieldProblem(field, "the data URI is not valid base64")]) from err
    if not data:
        raise ValidationError([FieldProblem(field, "the data URI is empty")])
    if len(data) > max_bytes:
        raise ValidationError([FieldProblem(field, f"the data URI holds {len(data)} bytes; the limit is {max_bytes}")])
    return DataUri(found.group(1).lower(), data)


def extension(content_type: str) -> str:
    return {"audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav", "image/jpeg": ".jpg"}.get(
        content_type) or mimetypes.guess_extension(content_type) or ".bin"


class UploadStore:
    """Upload records, each key's daily count, and the uploads' expiry (for the sweeper)."""

    def __init__(self, client: redis.Redis, *, ttl_s: int, per_key_per_day: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self.per_key_per_day = per_key_per_day

    def create(self, *, owner: str, filename: str, content_type: str, size: int) -> Upload:
        """Record a new upload (its object is written by the client, or by the API for a data URI).
        Raises :class:`UploadQuotaExceeded` (429) past UPLOADS_PER_KEY_PER_DAY."""
        now = time.time()
        day = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%d")
        upload_id = "up_" + secrets.token_hex(8)
        name = safe_name(filename)
        kind = kind_of(content_type) or ""
        record = Upload(id=upload_id, owner=owner, key=upload_key(owner, upload_id, name), filename=name,
                        content_type=content_type, size=size, kind=kind, created_at=round(now, 3),
                        expires_at=round(now + self.ttl_s, 3))

        def run() -> int:
            pipe = self.redis.pipeline()
            pipe.incr(keys.upload_count(owner, day))
            pipe.expire(keys.upload_count(owner, day), 2 * 86400)
            return int(pipe.execute()[0])
        if self.per_key_per_day and _guard(run) > self.per_key_per_day:
            raise UploadQuotaExceeded(f"this key made {self.per_key_per_day} uploads today, its limit; "
                                      "the count starts again at 00:00 UTC")
        self._write(record)
        return record

    def _write(self, record: Upload) -> None:
        fields = {"id": record.id, "owner": record.owner, "key": record.key, "filename": record.filename,
                  "content_type": record.content_type, "size": record.size, "kind": record.kind,
                  "created_at": record.created_at, "expires_at": record.expires_at}

        def run() -> None:
            pipe = self.redis.pipeline()
            pipe.hset(keys.upload(record.id), mapping={k: str(v) for k, v in fields.items()})
            # The record outlives the object a little, so the sweeper can still say what it was.
            pipe.expireat(keys.upload(record.id), int(record.expires_at) + 86400)
            pipe.zadd(keys.UPLOADS_EXPIRING, {record.key: record.expires_at}, gt=True)
            pipe.execute()
        _guard(run)

    def get(self, upload_id: str) -> Upload:
        """The upload. Raises :class:`NotFound`."""
        if not _ID.match(upload_id):
            raise NotFound(f"no upload {upload_id}")
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(keys.upload(upload_id))))
        if not data:
            raise NotFound(f"no upload {upload_id}")
        return Upload.from_hash(data)

    def hold(self, upload: Upload, *, until: float) -> Upload:
        """Keep the upload at least until ``until`` (a job's deadline: it is read when the job runs)."""
        if until <= upload.expires_at:
            return upload
        held = Upload(**{**upload.__dict__, "expires_at": round(until, 3)})
        self._write(held)
        return held

    def expired(self, now: float, limit: int = 500) -> list[str]:
        """Object keys of uploads past their expiry (the sweeper deletes them, then :meth:`forget`)."""
        return [str(k) for k in _guard(lambda: self.redis.zrangebyscore(keys.UPLOADS_EXPIRING, "-inf", now,
                                                                        start=0, num=limit))]

    def forget(self, object_keys: list[str]) -> None:
        if object_keys:
            _guard(lambda: self.redis.zrem(keys.UPLOADS_EXPIRING, *object_keys))
