"""Object storage through boto3: AWS S3, MinIO, LocalStack and moto alike.

Objects are written through ``endpoint_url`` (the one the worker can reach) and
presigned for ``public_endpoint_url`` (the one clients can reach), which may
differ: in docker-compose the worker writes to ``http://minio:9000`` while
clients download from ``http://localhost:9000``. Presigning is a local
computation, so a URL is signed afresh on every read and never goes stale.
"""
from __future__ import annotations

import math
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import StorageError
from chalicelib.settings import Settings

T = TypeVar("T")
SINGLE_PUT_BYTES = 8 * 1024 * 1024  # below this one PutObject beats a threaded multipart transfer


def _guard(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (BotoCoreError, ClientError) as err:
        raise StorageError(f"object storage failed to {what}: {type(err).__name__}") from err


def result_key(job_id: str, name: str) -> str:
    """Where a job's output file is stored: every result is under ``results/<job id>/``."""
    return f"results/{job_id}/{name}"


def result_prefix(job_id: str) -> str:
    return f"results/{job_id}/"


def upload_key(owner: str, upload_id: str, filename: str) -> str:
    """Where a client's upload goes (``uploads/<key id>/<upload id>/<filename>``)."""
    return f"uploads/{owner}/{upload_id}/{filename}"


def voice_key(owner: str, voice_id: str, suffix: str) -> str:
    return f"voices/{owner}/{voice_id}{suffix}"


# What the bucket keeps, and for how long a lifecycle rule keeps it where the store applies rules
# (a sweeper deletes the same everywhere: moto and MinIO without lifecycle never expire anything).
EXPIRING_PREFIXES = ("results/", "uploads/")


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str


class ObjectStorage:
    """One bucket; results under ``results/<job id>/`` (:func:`result_key`)."""

    def __init__(self, *, bucket: str, client: Any, presign_client: Any, presign_ttl_s: int = 3600) -> None:
        self.bucket = bucket
        self.client = client
        self.presign_client = presign_client
        self.presign_ttl_s = presign_ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStorage:
        def make(endpoint: str | None) -> Any:
            config = Config(signature_version="s3v4", connect_timeout=3, read_timeout=30,
                            retries={"max_attempts": 3}, s3={"addressing_style": "path"})
            return boto3.client("s3", endpoint_url=endpoint, region_name=settings.aws_region, config=config,
                                aws_access_key_id=settings.s3_access_key,
                                aws_secret_access_key=settings.s3_secret_key)
        client = make(settings.s3_endpoint_url)
        public = settings.s3_public_endpoint_url
        presign_client = make(public) if public and public != settings.s3_endpoint_url else client
        storage = cls(bucket=settings.s3_bucket, client=client, presign_client=presign_client,
                      presign_ttl_s=settings.presign_ttl_s)
        if settings.create_missing:
            storage.ensure_bucket()
            # Where the store applies rules, they expire what the sweeper deletes (worker/sweeper.py).
            storage.set_expiry_rules({"results/": math.ceil(settings.result_ttl_s / 86400) + 1,
                                      "uploads/": math.ceil((settings.upload_ttl_s + 86400) / 86400)})
        return storage

    def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (development stacks)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            _guard("create the bucket", lambda: self.client.create_bucket(Bucket=self.bucket))
        except BotoCoreError as err:
            raise StorageError(f"object storage cannot be reached: {type(err).__name__}") from err

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        ctype = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        _guard("store a result", lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                                                ContentType=ctype))
        return key

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        """Store a file; small ones in one request, large ones by multipart transfer."""
        if path.stat().st_size <= SINGLE_PUT_BYTES:
            return self.put_bytes(key, path.read_bytes(), content_type)
        ctype = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        _guard("store a result", lambda: self.client.upload_file(str(path), self.bucket, key,
                                                                 ExtraArgs={"ContentType": ctype}))
        return key

    def presign(self, key: str, ttl_s: int | None = None) -> str:
        """A GET URL for ``key`` on the public endpoint, valid ``ttl_s`` seconds."""
        return str(_guard("sign a URL", lambda: self.presign_client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_s or self.presign_ttl_s)))

    def presign_put(self, key: str, *, content_type: str, size: int, ttl_s: int) -> str:
        """A PUT URL for ``key`` on the public endpoint: the client sends the bytes straight to the
        bucket, with exactly this Content-Type and Content-Length (both are signed)."""
        return str(_guard("sign an upload URL", lambda: self.presign_client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type,
                                  "ContentLength": size}, ExpiresIn=ttl_s)))

    def head(self, key: str) -> ObjectInfo | None:
        """Size and type of an object, None when there is none."""
        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"object storage failed to look at an object: {type(err).__name__}") from err
        except BotoCoreError as err:
            raise StorageError(f"object storage cannot be reached: {type(err).__name__}") from err
        return ObjectInfo(size=int(reply.get("ContentLength") or 0), content_type=reply.get("ContentType") or "")

    def download(self, key: str, path: Path, *, max_bytes: int) -> ObjectInfo | None:
        """Copy an object to ``path`` (streamed); None when there is no such object.
        Raises :class:`StorageError`, or ValueError when it is over ``max_bytes``."""
        info = self.head(key)
        if info is None:
            return None
        if info.size > max_bytes:
            raise ValueError(f"is {info.size} bytes; the limit is {max_bytes}")
        _guard("read an object", lambda: self.client.download_file(self.bucket, key, str(path)))
        return info

    def copy(self, source: str, key: str) -> None:
        _guard("copy an object", lambda: self.client.copy_object(
            Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source}))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")

        def run() -> None:
            nonlocal deleted
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if found:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": found, "Quiet": True})
                    deleted += len(found)
        _guard("delete objects", run)
        return deleted

    def delete(self, key: str) -> None:
        _guard("delete an object", lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def set_expiry_rules(self, days: dict[str, int]) -> None:
        """Lifecycle rules expiring each prefix after its days (where the store applies them)."""
        rules = [{"ID": f"expire-{prefix.strip('/')}", "Filter": {"Prefix": prefix}, "Status": "Enabled",
                  "Expiration": {"Days": max(1, count)}} for prefix, count in days.items()]
        _guard("set lifecycle rules", lambda: self.client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}))
