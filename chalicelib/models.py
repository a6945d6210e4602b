"""Job model: types, statuses and the record stored in Redis."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_MAX_TIME_S = 1200  # a job's execution limit when the request sets no max_time


class JobType(StrEnum):
    CSM = "csm"
    WHISPER = "whisper"
    PORTRAIT = "portrait"
    ANALYZE = "analyze"

    @property
    def produces_file(self) -> bool:
        return self in (JobType.CSM, JobType.PORTRAIT)


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


TERMINAL_STATUSES = frozenset(s.value for s in JobStatus if s.terminal)


def _f(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


@dataclass
class Job:
    """One job as read from the store (a Redis hash)."""

    id: str
    type: JobType
    status: JobStatus
    owner: str
    params: dict[str, Any]
    created_at: float
    seq: int = 0
    attempt: int = 0
    max_attempts: int = 3
    updated_at: float | None = None
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
    lease_until: float | None = None
    webhook: str | None = None
    gpu_seconds: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> Job:
        known = {
            "id", "type", "status", "owner", "params", "created_at", "seq", "attempt",
            "max_attempts", "updated_at", "started_at", "finished_at", "deadline_at",
            "max_time_s", "notify_url", "result", "error", "error_kind", "progress", "node",
            "cancel_requested", "lease_until", "webhook", "gpu_seconds",
        }
        result = data.get("result")
        return cls(
            id=data["id"],
            type=JobType(data["type"]),
            status=JobStatus(data["status"]),
            owner=data.get("owner", ""),
            params=json.loads(data.get("params") or "{}"),
            created_at=float(data["created_at"]),
            seq=int(data.get("seq") or 0),
            attempt=int(data.get("attempt") or 0),
            max_attempts=int(data.get("max_attempts") or 3),
            updated_at=_f(data.get("updated_at")),
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
            lease_until=_f(data.get("lease_until")),
            webhook=data.get("webhook") or None,
            gpu_seconds=_f(data.get("gpu_seconds")),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class Lease:
    """A job id taken off a queue; ``token`` proves ownership to ack/extend/nack."""

    job_id: str
    token: str
    deliveries: int = 1
