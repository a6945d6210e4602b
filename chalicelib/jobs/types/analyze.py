"""analyze: image analysis by a vision model (the node's Ollama, or an OpenAI-compatible endpoint)."""
from __future__ import annotations

from chalicelib.jobs.schemas import Field
from chalicelib.jobs.spec import JobSpec

SPEC = JobSpec(
    name="analyze",
    summary="Image analysis by a vision model",
    output="text",
    service="ollama",
    example={"image_url": "https://media.example.com/photo.png", "prompt": "What is in this picture?"},
    fields=(
        Field("image_url", "url", "Image to analyse.", required=True, media="image"),
        Field("prompt", "string", "Question or instruction for the vision model.", max_length=4000, nonblank=True),
        Field("model", "string", "Vision model name (defaults to the service's).", max_length=100,
              pattern=r"^[A-Za-z0-9._:/-]+$"),
    ),
)
