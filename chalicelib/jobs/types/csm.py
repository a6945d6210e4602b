"""csm: text to speech, with optional voice cloning (the node's CSM Gradio app)."""
from __future__ import annotations

from typing import Any

from chalicelib.errors import FieldProblem
from chalicelib.jobs.schemas import MAX_TEXT_LEN, Field, absent, given
from chalicelib.jobs.spec import JobSpec

MAX_MONOLOGUE_ITEMS = 50
MAX_MONOLOGUE_ITEM_LEN = 1000
VOICES = ("random", "conversational_a", "conversational_b", "clone")
VOICE = Field("voice", "enum", "Speaker voice; 'clone' needs reference audio and its transcript, or a voice_id.",
              choices=VOICES, value_aliases={"random_voice": "random", "upload_voice": "clone"})
VOICE_ID = Field("voice_id", "string", "A voice of your library (POST /voices) to clone: instead of sending "
                 "reference_audio_url and reference_text with every job.", pattern=r"^voice_[0-9a-f]{12}$")
CLONE = ["clone", "upload_voice"]  # clone, as given
CLONE_OR_NONE: dict[str, Any] = {"properties": {"voice": {"enum": [*CLONE, None]}}}
IS_CLONE: dict[str, Any] = {"required": ["voice"], "properties": {"voice": {"enum": CLONE}}}
CLIP, CLIP_TEXT = ("reference_audio_url", "audio_url"), ("reference_text", "audio_text")
# ``rule`` below, as the document states it.
SCHEMA_RULES: tuple[dict[str, Any], ...] = (
    {"oneOf": [given("text"), given("monologue")]},
    {"if": given("voice_id"),
     "then": {"allOf": [absent(*CLIP), absent(*CLIP_TEXT), CLONE_OR_NONE]},
     "else": {"allOf": [{"if": given(*CLIP), "then": given(*CLIP_TEXT), "else": absent(*CLIP_TEXT)},
                        {"if": IS_CLONE, "then": given(*CLIP)},
                        {"if": given(*CLIP), "then": CLONE_OR_NONE}]}},
)


def rule(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    has_text = params.get("text") not in (None, "")
    has_monologue = params.get("monologue") is not None
    if has_text and has_monologue:
        problems.append(FieldProblem("text", "give text or monologue, not both"))
    elif not has_text and not has_monologue:
        problems.append(FieldProblem("text", "is required (or give monologue)"))
    ref_audio, ref_text = params.get("reference_audio_url"), params.get("reference_text")
    if params.get("voice_id"):
        if ref_audio or ref_text:
            problems.append(FieldProblem("voice_id", "give voice_id or reference_audio_url + reference_text, "
                                         "not both"))
        elif params.get("voice") not in (None, "clone"):
            problems.append(FieldProblem("voice", "a voice_id is cloned: leave voice out or make it clone"))
        params["voice"] = "clone"
        return
    if bool(ref_audio) != bool(ref_text):
        missing = "reference_text (audio_text)" if ref_audio else "reference_audio_url (audio_url)"
        problems.append(FieldProblem(missing.split(" ")[0], f"voice cloning needs both clip and transcript; "
                                     f"{missing} is missing"))
    voice = params.get("voice")
    if ref_audio and voice is None:
        params["voice"] = "clone"
    elif voice == "clone" and not (ref_audio and ref_text):
        if ref_audio or ref_text:
            return  # already reported above
        problems.append(FieldProblem("voice", "voice=clone needs reference_audio_url and reference_text, "
                                     "or a voice_id"))
    elif ref_audio and voice != "clone":
        problems.append(FieldProblem("voice", "reference audio is only used with voice=clone"))
    if params.get("voice") is None:
        params["voice"] = "random"


SPEC = JobSpec(
    name="csm",
    summary="Text to speech, with optional voice cloning",
    output="file",
    service="csm",
    rule=rule,
    schema_rules=SCHEMA_RULES,
    example={"text": "Hello there. This is a test of the speech service."},
    fields=(
        Field("text", "string", "Text to speak (or give `monologue`).", max_length=MAX_TEXT_LEN, nonblank=True),
        Field("monologue", "string_list", "Sentences to speak, in order (alternative to `text`).",
              max_items=MAX_MONOLOGUE_ITEMS, max_length=MAX_MONOLOGUE_ITEM_LEN),
        VOICE,
        VOICE_ID,
        Field("reference_audio_url", "url", "Voice clone: a clip of the voice.", aliases=("audio_url",),
              media="audio"),
        Field("reference_text", "string", "Voice clone: transcript of the clip.", max_length=MAX_MONOLOGUE_ITEM_LEN,
              aliases=("audio_text",), nonblank=True),
        Field("temperature", "number", "Sampling temperature.", default=0.9, minimum=0, maximum=2),
        Field("topk", "integer", "Top-k sampling.", default=50, minimum=1, maximum=100),
        Field("max_audio_length", "integer", "Maximum audio length per sentence, ms.", default=10000,
              minimum=1000, maximum=30000),
        Field("pause_duration", "integer", "Pause between sentences, ms.", default=150, minimum=0, maximum=500),
    ),
)
