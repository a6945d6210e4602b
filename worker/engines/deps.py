"""What the real engines share: input limits, cached clients and engine settings."""
from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import RenderError
from chalicelib.storage import ObjectStorage
from worker.clients import GradioClients
from worker.engines.base import JobContext
from worker.media import Limits


@dataclass
class EngineDeps:
    limits: Limits
    gradio: GradioClients
    analyze_api: str = "ollama"
    analyze_model: str = "llama3.2-vision:11b"
    analyze_prompt: str = "Describe this image."
    http_timeout_s: float = 60.0


def storage_of(ctx: JobContext) -> ObjectStorage:
    if ctx.storage is None:
        raise RenderError("object storage is not available to store the result")
    return ctx.storage
