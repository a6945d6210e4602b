"""Engines registered per job type."""
from __future__ import annotations

from chalicelib.errors import ConfigError
from chalicelib.models import JobType
from chalicelib.settings import Settings
from worker.engines.base import Engine, JobContext, Result

__all__ = ["Engine", "JobContext", "Result", "build_engines"]


def build_engines(settings: Settings) -> dict[JobType, Engine]:
    """One engine per job type, as ``WORKER_ENGINE`` says: ``real`` (GPU nodes) or ``echo`` (tests)."""
    if settings.worker_engine == "echo":
        from worker.engines.echo import EchoEngine
        return {job_type: EchoEngine(job_type, delay_s=settings.echo_delay_s) for job_type in JobType}
    if settings.worker_engine == "real":
        from worker.clients import GradioClients
        from worker.engines.analyze import AnalyzeEngine
        from worker.engines.csm import CsmEngine
        from worker.engines.deps import EngineDeps
        from worker.engines.portrait import PortraitEngine
        from worker.engines.whisper import WhisperEngine
        from worker.media import Limits
        from worker.safehttp import UrlPolicy

        limits = Limits(policy=UrlPolicy(settings.allow_private_urls, settings.url_allow_hosts),
                        max_audio_bytes=settings.max_audio_bytes, max_image_bytes=settings.max_image_bytes,
                        max_audio_duration_s=settings.max_audio_duration_s, timeout_s=settings.fetch_timeout_s)
        deps = EngineDeps(limits=limits, gradio=GradioClients(), analyze_api=settings.analyze_api,
                          analyze_model=settings.analyze_model, analyze_prompt=settings.analyze_prompt)
        return {JobType.CSM: CsmEngine(deps), JobType.WHISPER: WhisperEngine(deps),
                JobType.PORTRAIT: PortraitEngine(deps, ready_timeout_s=settings.node_ready_timeout_s),
                JobType.ANALYZE: AnalyzeEngine(deps)}
    raise ConfigError(f"WORKER_ENGINE: unknown engine set {settings.worker_engine!r} (known: real, echo)")
