"""Queue adapters and the factory that picks one from a URL setting.

``redis`` (the job store's Redis) or ``redis://...`` -> :class:`RedisQueue`;
``sqs://NAME`` or an ``https://sqs...`` queue URL -> :class:`SqsQueue`.

May import store, jobs and the base modules (errors, settings); never security, files, ops or api.
"""
from __future__ import annotations

from chalicelib.errors import ConfigError
from chalicelib.queues.base import JobQueue
from chalicelib.queues.redis_queue import RedisQueue
from chalicelib.queues.sqs_queue import SqsQueue
from chalicelib.settings import Settings

__all__ = ["JobQueue", "make_queue"]


def make_queue(settings: Settings, *, create: bool = False) -> JobQueue:
    """Build the configured queue; ``create`` makes a missing SQS queue (dev)."""
    url = settings.queue_url
    if url == "redis" or url.startswith(("redis://", "rediss://", "unix://")):
        return RedisQueue.from_url(settings.redis_url if url == "redis" else url, name=settings.queue_name,
                                   lease_s=settings.lease_s, timeout_s=settings.redis_timeout_s)
    if url.startswith("sqs://") or (url.startswith(("https://", "http://")) and "sqs" in url.lower()) or (
            url.startswith("http://") and settings.sqs_endpoint_url and url.startswith(settings.sqs_endpoint_url)):
        client = SqsQueue.connect(endpoint_url=settings.sqs_endpoint_url, region=settings.aws_region,
                                  access_key=settings.s3_access_key, secret_key=settings.s3_secret_key)
        if url.startswith("sqs://"):
            name = url.removeprefix("sqs://").strip("/")
            if create:
                queue_url = SqsQueue.ensure(client, name, lease_s=settings.lease_s,
                                            max_receives=settings.max_attempts + 2)
            else:
                queue_url = SqsQueue.lookup(client, name)
        else:
            queue_url = url
        return SqsQueue(client, queue_url=queue_url, lease_s=settings.lease_s)
    raise ConfigError(f"QUEUE_URL: unsupported queue {url!r} (use redis, redis://..., sqs://NAME or an SQS URL)")
