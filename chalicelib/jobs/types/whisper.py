"""whisper: speech to text (the node's WhisperX Gradio app)."""
from __future__ import annotations

from chalicelib.jobs.schemas import Field
from chalicelib.jobs.spec import JobSpec

MODELS = ("tiny", "base", "small", "medium", "large", "large-v2", "large-v3")

SPEC = JobSpec(
    name="whisper",
    summary="Speech to text",
    output="text",
    service="whisper",
    example={"audio_url": "https://media.example.com/talk.mp3", "model": "small"},
    fields=(
        Field("audio_url", "url", "Audio to transcribe.", required=True, media="audio"),
        Field("model", "enum", "Whisper model size.", default="medium", choices=MODELS),
        Field("task", "enum", "transcribe, or translate to English.", default="transcribe",
              choices=("transcribe", "translate")),
        Field("language", "string", "Language code; empty means auto-detect.", default="", max_length=16,
              pattern=r"^([A-Za-z]{2,3}([-_][A-Za-z]{2,4})?)?$"),
    ),
)
