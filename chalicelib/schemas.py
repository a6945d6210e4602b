"""Request schemas: one definition validates requests and renders OpenAPI.

Each job type has a list of :class:`Field` (type, range, default, aliases) and
a cross-field rule. :func:`parse_request` turns a raw JSON object into the
canonical parameters stored with the job, or raises :class:`ValidationError`
listing every bad field with its reason. Aliases from the seed API and the
first production version are accepted and folded into one canonical name.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import FieldProblem, ValidationError
from chalicelib.models import DEFAULT_MAX_TIME_S, JobType

MAX_URL_LEN = 2048
MAX_TEXT_LEN = 5000
MAX_MONOLOGUE_ITEMS = 50
MAX_MONOLOGUE_ITEM_LEN = 1000

_MISSING = object()


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "string" | "integer" | "number" | "url" | "string_list" | "enum"
    description: str
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    max_items: int | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    value_aliases: dict[str, str] = field(default_factory=dict)
    pattern: str | None = None

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return ``(normalised value, None)`` or ``(None, reason)``."""
        checker = _CHECKERS[self.kind]
        return checker(self, value)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"description": self.description, **_KIND_SCHEMA[self.kind](self)}
        bounds = {"pattern": self.pattern, "minimum": self.minimum, "maximum": self.maximum,
                  "default": self.default}
        if self.kind == "string":
            bounds["maxLength"] = self.max_length
        schema.update({k: v for k, v in bounds.items() if v is not None})
        return schema


def _list_schema(f: Field) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string", "minLength": 1}
    if f.max_length:
        item["maxLength"] = f.max_length
    schema: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
    if f.max_items:
        schema["maxItems"] = f.max_items
    return schema


_KIND_SCHEMA: dict[str, Callable[[Field], dict[str, Any]]] = {
    "string": lambda f: {"type": "string"},
    "url": lambda f: {"type": "string", "format": "uri", "maxLength": MAX_URL_LEN},
    "enum": lambda f: {"type": "string", "enum": list(f.choices) + list(f.value_aliases)},
    "integer": lambda f: {"type": "integer"},
    "number": lambda f: {"type": "number"},
    "string_list": _list_schema,
}


def _check_string(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a string, got {_json_type(value)}"
    if f.max_length is not None and len(value) > f.max_length:
        return None, f"must be at most {f.max_length} characters, got {len(value)}"
    if f.pattern and not re.fullmatch(f.pattern, value):
        return None, f"has an invalid format (must match {f.pattern})"
    return value, None


def _check_url(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a URL string, got {_json_type(value)}"
    if len(value) > MAX_URL_LEN:
        return None, f"must be at most {MAX_URL_LEN} characters, got {len(value)}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None, "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return None, "must be an http or https URL"
    if not parts.hostname:
        return None, "must name a host"
    return value, None


def _check_enum(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a string, got {_json_type(value)}"
    value = f.value_aliases.get(value, value)
    if value not in f.choices:
        return None, f"must be one of {', '.join(f.choices)}"
    return value, None


def _check_number(f: Field, value: Any) -> tuple[Any, str | None]:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if f.kind == "integer":
        if isinstance(value, float) and is_number and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None, f"must be an integer, got {_json_type(value)}"
    elif not is_number or not math.isfinite(value):
        return None, f"must be a number, got {_json_type(value)}"
    if f.minimum is not None and value < f.minimum:
        return None, f"must be between {_fmt(f.minimum)} and {_fmt(f.maximum)}, got {value}"
    if f.maximum is not None and value > f.maximum:
        return None, f"must be between {_fmt(f.minimum)} and {_fmt(f.maximum)}, got {value}"
    return value, None


def _check_string_list(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list):
        return None, f"must be an array of strings, got {_json_type(value)}"
    if not value:
        return None, "must not be empty"
    if f.max_items is not None and len(value) > f.max_items:
        return None, f"must have at most {f.max_items} items, got {len(value)}"
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            return None, f"item {index} must be a non-empty string"
        if f.max_length is not None and len(item) > f.max_length:
            return None, f"item {index} must be at most {f.max_length} characters"
    return value, None


_CHECKERS: dict[str, Callable[[Field, Any], tuple[Any, str | None]]] = {
    "string": _check_string,
    "url": _check_url,
    "enum": _check_enum,
    "integer": _check_number,
    "number": _check_number,
    "string_list": _check_string_list,
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fmt(number: float | None) -> str:
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else str(number)


COMMON_FIELDS = (
    Field("notify_url", "url", "Webhook called when the job ends (Standard Webhooks signed)."),
    Field("notify_events", "string_list", "Webhook events wanted: 'completed' (default) and/or 'started'.",
          max_items=2, max_length=16),
    Field("complete_in", "integer", "Deadline in seconds: a job that cannot finish by then ends timed_out.",
          default=3600, minimum=60, maximum=86400),
    Field("max_time", "integer", "Execution limit in seconds once the job runs.",
          default=DEFAULT_MAX_TIME_S, minimum=60, maximum=7200),
)

VOICES = ("random", "conversational_a", "conversational_b", "clone")
_VOICE = Field("voice", "enum", "Speaker voice; 'clone' needs reference audio and its transcript.",
               choices=VOICES, value_aliases={"random_voice": "random", "upload_voice": "clone"})

CSM_FIELDS = (
    Field("text", "string", "Text to speak (or give `monologue`).", max_length=MAX_TEXT_LEN),
    Field("monologue", "string_list", "Sentences to speak, in order (alternative to `text`).",
          max_items=MAX_MONOLOGUE_ITEMS, max_length=MAX_MONOLOGUE_ITEM_LEN),
    _VOICE,
    Field("reference_audio_url", "url", "Voice clone: a clip of the voice.", aliases=("audio_url",)),
    Field("reference_text", "string", "Voice clone: transcript of the clip.", max_length=MAX_MONOLOGUE_ITEM_LEN,
          aliases=("audio_text",)),
    Field("temperature", "number", "Sampling temperature.", default=0.9, minimum=0, maximum=2),
    Field("topk", "integer", "Top-k sampling.", default=50, minimum=1, maximum=100),
    Field("max_audio_length", "integer", "Maximum audio length per sentence, ms.", default=10000,
          minimum=1000, maximum=30000),
    Field("pause_duration", "integer", "Pause between sentences, ms.", default=150, minimum=0, maximum=500),
)

WHISPER_MODELS = ("tiny", "base", "small", "medium", "large", "large-v2", "large-v3")
WHISPER_FIELDS = (
    Field("audio_url", "url", "Audio to transcribe.", required=True),
    Field("model", "enum", "Whisper model size.", default="medium", choices=WHISPER_MODELS),
    Field("task", "enum", "transcribe, or translate to English.", default="transcribe",
          choices=("transcribe", "translate")),
    Field("language", "string", "Language code; empty means auto-detect.", default="", max_length=16,
          pattern=r"^([A-Za-z]{2,3}([-_][A-Za-z]{2,4})?)?$"),
)

PORTRAIT_FIELDS = (
    Field("image_url", "url", "Portrait image.", required=True),
    Field("audio_url", "url", "Speech to lip-sync (or give `text`)."),
    Field("text", "string", "Text to synthesise first with the csm engine (instead of `audio_url`).",
          max_length=MAX_TEXT_LEN),
    _VOICE,
)

ANALYZE_FIELDS = (
    Field("image_url", "url", "Image to analyse.", required=True),
    Field("prompt", "string", "Question or instruction for the vision model.", max_length=4000),
    Field("model", "string", "Vision model name (defaults to the service's).", max_length=100,
          pattern=r"^[A-Za-z0-9._:/-]+$"),
)


def _rule_csm(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    has_text = params.get("text") not in (None, "")
    has_monologue = params.get("monologue") is not None
    if has_text and has_monologue:
        problems.append(FieldProblem("text", "give text or monologue, not both"))
    elif not has_text and not has_monologue:
        problems.append(FieldProblem("text", "is required (or give monologue)"))
    ref_audio, ref_text = params.get("reference_audio_url"), params.get("reference_text")
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
        problems.append(FieldProblem("voice", "voice=clone needs reference_audio_url and reference_text"))
    elif ref_audio and voice != "clone":
        problems.append(FieldProblem("voice", "reference audio is only used with voice=clone"))
    params.setdefault("voice", "random")
    if params.get("voice") is None:
        params["voice"] = "random"


def _rule_portrait(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    has_audio = bool(params.get("audio_url"))
    has_text = params.get("text") not in (None, "")
    if has_audio and has_text:
        problems.append(FieldProblem("audio_url", "give audio_url or text, not both"))
    elif not has_audio and not has_text:
        problems.append(FieldProblem("audio_url", "is required (or give text to synthesise the speech)"))
    if params.get("voice") is not None and not has_text:
        problems.append(FieldProblem("voice", "voice is only used with text"))
    if params.get("voice") == "clone":
        problems.append(FieldProblem("voice", "clone is not available for portrait; use a csm job first"))
    if has_text and params.get("voice") is None:
        params["voice"] = "random"


def _no_rule(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    return None


def _rule_common(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    events = params.get("notify_events")
    if events is not None:
        bad = [e for e in events if e not in ("started", "completed")]
        if bad:
            problems.append(FieldProblem("notify_events", "events must be 'started' or 'completed'"))
        elif not params.get("notify_url"):
            problems.append(FieldProblem("notify_events", "needs notify_url"))
    if params["max_time"] > params["complete_in"]:
        problems.append(FieldProblem("max_time", "must not exceed complete_in"))


@dataclass(frozen=True)
class JobSchema:
    job_type: JobType
    summary: str
    fields: tuple[Field, ...]
    rule: Callable[[dict[str, Any], list[FieldProblem]], None]

    def field_names(self) -> dict[str, Field]:
        """Map every accepted name (canonical and alias) to its field."""
        names: dict[str, Field] = {}
        for f in self.fields:
            names[f.name] = f
            for alias in f.aliases:
                names[alias] = f
        return names

    def json_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for f in self.fields:
            properties[f.name] = f.json_schema()
            for alias in f.aliases:
                properties[alias] = {**f.json_schema(), "description": f"Alias of `{f.name}`."}
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [f.name for f in self.fields if f.required],
            "properties": properties,
        }


SCHEMAS: dict[JobType, JobSchema] = {
    JobType.CSM: JobSchema(JobType.CSM, "Text to speech, with optional voice cloning",
                           CSM_FIELDS + COMMON_FIELDS, _rule_csm),
    JobType.WHISPER: JobSchema(JobType.WHISPER, "Speech to text", WHISPER_FIELDS + COMMON_FIELDS, _no_rule),
    JobType.PORTRAIT: JobSchema(JobType.PORTRAIT, "Talking-portrait video from an image and speech",
                                PORTRAIT_FIELDS + COMMON_FIELDS, _rule_portrait),
    JobType.ANALYZE: JobSchema(JobType.ANALYZE, "Image analysis by a vision model",
                               ANALYZE_FIELDS + COMMON_FIELDS, _no_rule),
}
_NAMES = {job_type: schema.field_names() for job_type, schema in SCHEMAS.items()}


def _read_fields(names: dict[str, Field], body: dict[str, Any],
                 problems: list[FieldProblem]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check each given field; returns canonical values and the name each was given as."""
    params: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in body.items():
        spec = names.get(key)
        if spec is None:
            problems.append(FieldProblem(key, "unknown field"))
        elif spec.name in given_as:
            problems.append(FieldProblem(key, f"given twice (also as {given_as[spec.name]})"))
        else:
            given_as[spec.name] = key
            if value is None:
                continue  # JSON null means "not given"
            normalised, reason = spec.check(value)
            if reason:
                problems.append(FieldProblem(key, reason))
            else:
                params[spec.name] = normalised
    return params, given_as


def parse_request(job_type: JobType, body: Any) -> dict[str, Any]:
    """Validate a request body and return its canonical parameters.

    Raises :class:`ValidationError` listing every bad or unknown field.
    """
    if not isinstance(body, dict):
        raise ValidationError([FieldProblem("body", f"must be a JSON object, got {_json_type(body)}")])
    schema = SCHEMAS[job_type]
    problems: list[FieldProblem] = []
    params, given_as = _read_fields(_NAMES[job_type], body, problems)
    for spec in schema.fields:
        if spec.name in params:
            continue
        if spec.required and not any(p.field == given_as.get(spec.name) for p in problems):
            problems.append(FieldProblem(spec.name, "is required"))
        elif spec.default is not None:
            params[spec.name] = spec.default
    if not problems:
        _rule_common(params, problems)
        schema.rule(params, problems)
    if problems:
        raise ValidationError(problems)
    return params
