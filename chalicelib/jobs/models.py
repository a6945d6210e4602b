"""Value types shared by the API and the worker: statuses, the job record, leases, limits."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

DEFAULT_MAX_TIME_S = 1200  # a job's execution limit when the request sets no max_time


def now_s() -> float:
    """Unix time in seconds, to the millisecond (what every record stores)."""
    return round(time.time(), 3)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


def _f(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


@dataclass
class Job:
    """One job as read from the store (a Redis hash). ``type`` names its spec (chalicelib/jobs/spec.py)."""

    id: str
    type: str
    status: JobStatus
    owner: str
    params: dict[str, Any]
    created_at: float
    seq: int = 0
    attempt: int = 0
    max_attempts: int = 3
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None
    max_time_s: float = DEFAULT_MAX_TIME_S
    notify_url: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    progress: float | None = None
    node: str | None = None
    cancel_requested: bool = False
    marked: bool = False  # its status was set by the client (the first version's POST /job/{id})
    webhook: str | None = None
    gpu_seconds: float | None = None
    cost: float | None = None  # gpu_seconds at GPU_PRICE_PER_HOUR, recorded when it ended (None: no price set)
    metadata: dict[str, Any] | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> {key, kind}: bucket objects
    retry_of: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> Job:
        result = data.get("result")
        return cls(
            id=data["id"],
            type=data["type"],
            status=JobStatus(data["status"]),
            owner=data.get("owner", ""),
            params=json.loads(data.get("params") or "{}"),
            created_at=float(data["created_at"]),
            seq=int(data.get("seq") or 0),
            attempt=int(data.get("attempt") or 0),
            max_attempts=int(data.get("max_attempts") or 3),
            started_at=_f(data.get("started_at")),
            finished_at=_f(data.get("finished_at")),
            deadline_at=_f(data.get("deadline_at")),
            max_time_s=float(data.get("max_time_s") or DEFAULT_MAX_TIME_S),
            notify_url=data.get("notify_url") or None,
            result=json.loads(result) if result else None,
            error=data.get("error") or None,
            error_kind=data.get("error_kind") or None,
            progress=_f(data.get("progress")),
            node=data.get("node") or None,
            cancel_requested=data.get("cancel_requested") == "1",
            marked=data.get("marked") == "1",
            webhook=data.get("webhook") or None,
            gpu_seconds=_f(data.get("gpu_seconds")),
            cost=_f(data.get("cost")),
            metadata=json.loads(data["metadata"]) if data.get("metadata") else None,
            inputs=json.loads(data["inputs"]) if data.get("inputs") else {},
            retry_of=data.get("retry_of") or None,
            idempotency_key=data.get("idempotency_key") or None,
        )


@dataclass(frozen=True)
class Lease:
    """A job id taken off a queue; ``token`` proves ownership to ack/extend/nack."""

    job_id: str
    token: str


@dataclass(frozen=True)
class Admission:
    """Limits applied when a job is created: a rate (GCRA) and a cap on queued jobs."""

    rate_per_s: float = 0.0  # 0: no rate limit
    burst: int = 1
    max_queued: int = 0  # 0: no cap
    gpu_seconds_per_day: float = 0.0  # 0: no GPU budget (counted per UTC day; see create.lua)


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_s: float


def iso(ts: float | None) -> str | None:
    """Unix seconds as the API writes every time: RFC 3339, UTC, milliseconds (``2026-11-28T10:00:00.000Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
