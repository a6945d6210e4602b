"""portrait: a talking-portrait video from an image and speech (the node's ComfyUI, SONIC graph)."""
from __future__ import annotations

from typing import Any

from chalicelib.errors import FieldProblem
from chalicelib.jobs.schemas import MAX_TEXT_LEN, Field, given
from chalicelib.jobs.spec import JobSpec
from chalicelib.jobs.types.csm import CLONE, CLONE_OR_NONE, VOICE, VOICE_ID

# ``rule`` below, as the document states it.
SCHEMA_RULES: tuple[dict[str, Any], ...] = (
    {"oneOf": [given("audio_url"), given("text")]},
    {"if": given("voice", "voice_id"), "then": given("text")},
    {"if": given("voice_id"), "then": CLONE_OR_NONE,
     "else": {"properties": {"voice": {"not": {"enum": CLONE}}}}},
)


def rule(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    has_audio = bool(params.get("audio_url"))
    has_text = params.get("text") not in (None, "")
    if has_audio and has_text:
        problems.append(FieldProblem("audio_url", "give audio_url or text, not both"))
    elif not has_audio and not has_text:
        problems.append(FieldProblem("audio_url", "is required (or give text to synthesise the speech)"))
    for name in ("voice", "voice_id"):
        if params.get(name) is not None and not has_text:
            problems.append(FieldProblem(name, f"{name} is only used with text"))
    if params.get("voice_id"):
        if params.get("voice") not in (None, "clone"):
            problems.append(FieldProblem("voice", "a voice_id is cloned: leave voice out or make it clone"))
        params["voice"] = "clone"
    elif params.get("voice") == "clone":
        problems.append(FieldProblem("voice", "clone needs a voice_id (a voice of your library, POST /voices)"))
    if has_text and params.get("voice") is None:
        params["voice"] = "random"


SPEC = JobSpec(
    name="portrait",
    summary="Talking-portrait video from an image and speech",
    output="file",
    service="comfyui",
    rule=rule,
    schema_rules=SCHEMA_RULES,
    example={"image_url": "https://media.example.com/face.jpg", "text": "Hello, I can talk now."},
    fields=(
        Field("image_url", "url", "Portrait image.", required=True, media="image"),
        Field("audio_url", "url", "Speech to lip-sync (or give `text`).", media="audio"),
        Field("text", "string", "Text to synthesise first with the csm engine (instead of `audio_url`).",
              max_length=MAX_TEXT_LEN, nonblank=True),
        VOICE,
        VOICE_ID,
    ),
)
