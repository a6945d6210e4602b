"""Request fields: one definition validates requests and renders their JSON Schema.

A :class:`Field` has a kind (string, integer, url ...), a range, a default and
aliases; a job type's spec (chalicelib/jobspec.py) lists its fields and a
cross-field rule. :func:`parse_fields` turns a raw JSON object into canonical
parameters, or raises :class:`ValidationError` listing every bad field with its
reason. Aliases from the seed API and the first production version are
accepted and folded into one canonical name.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import FieldProblem, ValidationError
from chalicelib.models import DEFAULT_MAX_TIME_S

MAX_URL_LEN = 2048
MAX_TEXT_LEN = 5000
NONBLANK = r"\S"  # JSON Schema patterns search: some character that is not whitespace

Rule = Callable[[dict[str, Any], list[FieldProblem]], None]


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "string" | "integer" | "number" | "url" | "string_list" | "enum" | "object"
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
    media: str = ""  # an input URL: "audio" or "image" (what the worker fetches and checks)
    nonblank: bool = False  # a string that must hold more than whitespace

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return ``(normalised value, None)`` or ``(None, reason)``."""
        checker = _CHECKERS[self.kind]
        return checker(self, value)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"description": self.description, **_KIND_SCHEMA[self.kind](self)}
        pattern = self.pattern or (NONBLANK if self.nonblank else None)
        bounds = {"pattern": pattern, "minimum": self.minimum, "maximum": self.maximum, "default": self.default}
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


def _url_schema(f: Field) -> dict[str, Any]:
    web = {"type": "string", "format": "uri", "maxLength": MAX_URL_LEN, "pattern": r"^https?://[!-~]+$"}
    if not f.media:
        return web
    return {"anyOf": [web, {"type": "string", "pattern": r"^upload://up_[0-9a-f]{16}$"},
                      {"type": "string", "pattern": r"^data:[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+(;[^,]*)?;base64,"}]}


def _check_object(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return None, f"must be a JSON object, got {json_type(value)}"
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if f.max_length is not None and size > f.max_length:
        return None, f"must be at most {f.max_length} bytes as JSON, got {size}"
    return value, None


_KIND_SCHEMA: dict[str, Callable[[Field], dict[str, Any]]] = {
    "string": lambda f: {"type": "string"},
    "url": _url_schema,
    "object": lambda f: {"type": "object"},
    "enum": lambda f: {"type": "string", "enum": list(f.choices) + list(f.value_aliases)},
    "integer": lambda f: {"type": "integer"},
    "number": lambda f: {"type": "number"},
    "string_list": _list_schema,
}


def _check_string(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a string, got {json_type(value)}"
    if f.max_length is not None and len(value) > f.max_length:
        return None, f"must be at most {f.max_length} characters, got {len(value)}"
    if f.pattern and not re.fullmatch(f.pattern, value):
        return None, f"has an invalid format (must match {f.pattern})"
    if f.nonblank and not value.strip():
        return None, "must not be empty or only whitespace"
    return value, None


def _check_url(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a URL string, got {json_type(value)}"
    if f.media and value.startswith(("upload://", "data:")):
        return value, None  # an upload of the key, or inline data: checked by the service (chalicelib/uploads.py)
    if len(value) > MAX_URL_LEN:
        return None, f"must be at most {MAX_URL_LEN} characters, got {len(value)}"
    if not value.isascii():
        return None, "must be ASCII: percent-encode other characters (and use the punycode of a host)"
    bad = next((c for c in value if ord(c) <= 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return None, f"must not contain spaces or control characters (found {bad!r} at {value.index(bad)})"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None, "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return None, ("must be an http(s) URL, an upload (upload://ID) or a data: URI" if f.media
                      else "must be an http or https URL")
    if not parts.hostname:
        return None, "must name a host"
    return value, None


def _check_enum(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a string, got {json_type(value)}"
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
            return None, f"must be an integer, got {json_type(value)}"
    elif not is_number or not math.isfinite(value):
        return None, f"must be a number, got {json_type(value)}"
    if f.minimum is not None and value < f.minimum:
        return None, f"must be between {_fmt(f.minimum)} and {_fmt(f.maximum)}, got {value}"
    if f.maximum is not None and value > f.maximum:
        return None, f"must be between {_fmt(f.minimum)} and {_fmt(f.maximum)}, got {value}"
    return value, None


def _check_string_list(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list):
        return None, f"must be an array of strings, got {json_type(value)}"
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
    "object": _check_object,
}


def json_type(value: Any) -> str:
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


NOTIFY_EVENTS = ("started", "progress", "completed")
COMMON_FIELDS = (
    Field("notify_url", "url", "Webhook called when the job ends (Standard Webhooks signed)."),
    Field("notify_events", "string_list", "Webhook events wanted: 'completed' (the default), 'started', "
          "'progress' (at most one per job every 5 s, best effort).", max_items=3, max_length=16),
    Field("complete_in", "integer", "Deadline in seconds: a job that cannot finish by then ends timed_out.",
          default=3600, minimum=60, maximum=86400),
    Field("max_time", "integer", "Execution limit in seconds once the job runs.",
          default=DEFAULT_MAX_TIME_S, minimum=60, maximum=7200),
    Field("metadata", "object", "Anything of the client's (at most 4 KiB as JSON), returned with the job "
          "and in its webhooks.", max_length=4096),
)


def common_rule(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    events = params.get("notify_events")
    if events is not None:
        if any(e not in NOTIFY_EVENTS for e in events):
            problems.append(FieldProblem("notify_events", f"events must be among {', '.join(NOTIFY_EVENTS)}"))
        elif not params.get("notify_url"):
            problems.append(FieldProblem("notify_events", "needs notify_url"))
    if params["max_time"] > params["complete_in"]:
        problems.append(FieldProblem("max_time", "must not exceed complete_in"))


def no_rule(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    return None


def accepted_names(fields: tuple[Field, ...]) -> dict[str, Field]:
    """Map every accepted name (canonical and alias) to its field."""
    names: dict[str, Field] = {}
    for f in fields:
        names[f.name] = f
        for alias in f.aliases:
            names[alias] = f
    return names


def _read_fields(names: Mapping[str, Field], body: dict[str, Any],
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


def parse_fields(fields: tuple[Field, ...], names: Mapping[str, Field], rule: Rule, body: Any, *,
                 common: bool = True) -> dict[str, Any]:
    """Validate a request body against ``fields`` and return its canonical parameters; ``common``:
    a job's body, whose common fields (notify_*, complete_in, max_time) are checked together too.

    Raises :class:`ValidationError` listing every bad or unknown field.
    """
    if not isinstance(body, dict):
        raise ValidationError([FieldProblem("body", f"must be a JSON object, got {json_type(body)}")])
    problems: list[FieldProblem] = []
    params, given_as = _read_fields(names, body, problems)
    for spec in fields:
        if spec.name in params:
            continue
        if spec.required and not any(p.field == given_as.get(spec.name) for p in problems):
            problems.append(FieldProblem(spec.name, "is required"))
        elif spec.default is not None:
            params[spec.name] = spec.default
    if not problems:
        if common:
            common_rule(params, problems)
        rule(params, problems)
    if problems:
        raise ValidationError(problems)
    return params
