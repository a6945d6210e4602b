"""Engines registered per job type."""
from __future__ import annotations

from chalicelib.errors import ConfigError
from chalicelib.models import JobType
from chalicelib.settings import Settings
from worker.engines.base import Engine, JobContext, Result

__all__ = ["Engine", "JobContext", "Result", "build_engines"]


def build_engines(settings: Settings) -> dict[JobType, Engine]:
    """One engine per job type, as ``WORKER_ENGINE`` says (``echo`` until the real engines land)."""
    if settings.worker_engine == "echo":
        from worker.engines.echo import EchoEngine
        return {job_type: EchoEngine(job_type, delay_s=settings.echo_delay_s) for job_type in JobType}
    raise ConfigError(f"WORKER_ENGINE: unknown engine set {settings.worker_engine!r} (known: echo)")
