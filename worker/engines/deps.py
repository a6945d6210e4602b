"""What the real engines share: input limits, cached clients and engine settings."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from chalicelib.errors import RenderError
from chalicelib.storage import ObjectStorage
from worker.clients import GradioClients
from worker.engines.base import JobContext
from worker.media import Limits

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class EngineDeps:
    limits: Limits
    gradio: GradioClients
    analyze_api: str = "ollama"
    analyze_model: str = "llama3.2-vision:11b"
    analyze_prompt: str = "Describe this image."
    http_timeout_s: float = 60.0
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="engine-io"))

    def parallel(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on a few threads (several small uploads at once); order kept."""
        return list(self._pool.map(fn, items))


def storage_of(ctx: JobContext) -> ObjectStorage:
    if ctx.storage is None:
        raise RenderError("object storage is not available to store the result")
    return ctx.storage
