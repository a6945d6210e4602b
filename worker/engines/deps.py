"""What the engines share: input limits, cached node clients and the engines' settings."""
from __future__ import annotations

from dataclasses import dataclass

from chalicelib.settings import Settings
from worker.clients import GradioClients
from worker.media import Limits

HTTP_TIMEOUT_S = 60.0  # one call to a node's HTTP API (Ollama), capped by the job's remaining time


@dataclass
class EngineDeps:
    limits: Limits
    gradio: GradioClients
    analyze_api: str
    analyze_model: str
    analyze_prompt: str
    echo_delay_s: float
    node_ready_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineDeps:
        return cls(limits=Limits.from_settings(settings), gradio=GradioClients(), analyze_api=settings.analyze_api,
                   analyze_model=settings.analyze_model, analyze_prompt=settings.analyze_prompt,
                   echo_delay_s=settings.echo_delay_s, node_ready_timeout_s=settings.node_ready_timeout_s)
