"""Request fields: one definition validates requests and renders their JSON Schema.

A :class:`Field` has a kind (string, integer, url ...), a range, a default and
aliases; a job type's spec (chalicelib/jobs/spec.py) lists its fields and a
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

from chalicelib.errors import FieldProblem, ValidationError
from chalicelib.jobs.models import DEFAULT_MAX_TIME_S

MAX_URL_LEN = 2048
MAX_TEXT_LEN = 5000

# Every pattern here is read the same way by Python (``re.fullmatch``) and by a JSON Schema validator
# (ECMA-262, a search): anchored at both ends, explicit classes only (no ``\s``, ``\d``, ``.``), so the
# document and the check cannot disagree on any string.
_CONTROL = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f"  # C0 controls but tab, LF, CR; DEL
_SPACE = ("\\u0009-\\u000d\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
          "\\ufeff")  # ECMAScript's white space and line terminators
TEXT_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"  # something to read, no controls
_TEXT = re.compile(TEXT_PATTERN)
_VISIBLE = re.compile(f"[^{_SPACE}]")

_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"({_OCTET}\\.){{3}}{_OCTET}"
_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"({_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join((  # RFC 3986's IPv6address
    f"({_H16}:){{6}}{_LS32}", f"::({_H16}:){{5}}{_LS32}", f"({_H16})?::({_H16}:){{4}}{_LS32}",
    f"(({_H16}:){{0,1}}{_H16})?::({_H16}:){{3}}{_LS32}", f"(({_H16}:){{0,2}}{_H16})?::({_H16}:){{2}}{_LS32}",
    f"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}", f"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
    f"(({_H16}:){{0,5}}{_H16})?::{_H16}", f"(({_H16}:){{0,6}}{_H16})?::"))
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
WEB_URL_PATTERN = (f"^https?://([A-Za-z0-9._~%!$&'()*+,;=:-]*@)?([A-Za-z0-9._-]+|\\[({_IPV6})\\])"
                   f"(:{_PORT}?)?([/?#][!-~]*)?$")
_WEB_URL = re.compile(WEB_URL_PATTERN)
UPLOAD_URL_PATTERN = "^upload://up_[0-9a-f]{16}$"
_BASE64 = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)"
MEDIA_TOP_TYPES = {"audio": ("audio", "video"), "image": ("image",)}


def data_uri_pattern(media: str) -> str:
    """``data:<type>/<subtype>[;name=value]*;base64,<data>``, lower-case type, of a media kind's types."""
    tops = "|".join(MEDIA_TOP_TYPES[media])
    return f"^data:(({tops})/[a-z0-9.+-]+)((;[a-z0-9-]+=[A-Za-z0-9._+-]*)*);base64,({_BASE64})$"


# RFC 3339 date-time (a time zone required; a leap second only at 23:59:60 UTC): JSON Schema's format
# date-time, which query parameters take.
DATE_TIME_PATTERN = ("^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):"
                     "([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))$")
_DATE_TIME = re.compile(DATE_TIME_PATTERN)


def _days_from_civil(year: int, month: int, day: int) -> int | None:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's days_from_civil),
    or None for a day the month does not have."""
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > (29 if leap else 28) if month == 2 else day > (30 if month in (4, 6, 9, 11) else 31):
        return None
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def civil_from_days(days: int) -> str:
    """``YYYY-MM-DD`` of a day number (the inverse of the above)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return f"{yoe + era * 400 + (month <= 2):04d}-{month:02d}-{day:02d}"


DATE_PATTERN = "^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"  # RFC 3339 full-date


def parse_date(value: str) -> int | None:
    """An RFC 3339 full-date (JSON Schema's format date) as its day number, or None."""
    found = re.fullmatch(DATE_PATTERN, value)
    return _days_from_civil(*(int(g) for g in found.groups())) if found else None


def parse_date_time(value: str) -> float | None:
    """An RFC 3339 date-time as unix seconds, or None when it is not one (a day the month does not have,
    say). Computed, not through ``datetime``, so every year the grammar allows (0000-9999) works."""
    found = _DATE_TIME.fullmatch(value)
    if not found:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    days = _days_from_civil(year, month, day)
    if days is None:
        return None
    minute_utc = days * 86400 + hour * 3600 + minute * 60
    if found.group(9):
        offset = int(found.group(10)) * 3600 + int(found.group(11)) * 60
        minute_utc -= offset if found.group(9) == "+" else -offset
    if second == 60 and (minute_utc // 60) % 1440 != 1439:
        return None  # a leap second is 23:59:60 UTC, and no other time
    return minute_utc + second + float("0" + (found.group(7) or ""))


Rule = Callable[[dict[str, Any], list[FieldProblem]], None]


def given(*names: str) -> dict[str, Any]:
    """JSON Schema: one of ``names`` is in the object with a value (null means not given)."""
    options = [{"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in names]
    return options[0] if len(options) == 1 else {"anyOf": options}


def absent(*names: str) -> dict[str, Any]:
    """JSON Schema: none of ``names`` has a value."""
    return {"not": given(*names)}


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
    pattern: str | None = None  # anchored (^...$), explicit classes: see TEXT_PATTERN
    media: str = ""  # an input URL: "audio" or "image" (what the worker fetches and checks)
    nonblank: bool = False  # text to read: something besides white space, no control characters

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return ``(normalised value, None)`` or ``(None, reason)``."""
        checker = _CHECKERS[self.kind]
        return checker(self, value)

    def json_schema(self) -> dict[str, Any]:
        """Its JSON Schema; an optional field also takes null, which means "not given"."""
        schema: dict[str, Any] = {"description": self.description, **_KIND_SCHEMA[self.kind](self)}
        pattern = self.pattern or (TEXT_PATTERN if self.nonblank else None)
        bounds = {"pattern": pattern, "minimum": self.minimum, "maximum": self.maximum, "default": self.default}
        if self.kind == "string":
            bounds["maxLength"] = self.max_length
        schema.update({k: v for k, v in bounds.items() if v is not None})
        if not self.required:
            schema = _nullable(schema)
        return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    nullable = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        nullable["enum"] = [*schema["enum"], None]
    return nullable


def _list_schema(f: Field) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string", "pattern": TEXT_PATTERN}
    if f.choices:
        item = {"type": "string", "enum": list(f.choices)}
    elif f.max_length:
        item["maxLength"] = f.max_length
    schema: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
    if f.max_items:
        schema["maxItems"] = f.max_items
    return schema


def _url_schema(f: Field) -> dict[str, Any]:
    web = {"type": "string", "maxLength": MAX_URL_LEN, "pattern": WEB_URL_PATTERN}
    if not f.media:
        return web
    return {"anyOf": [web, {"type": "string", "pattern": UPLOAD_URL_PATTERN},
                      {"type": "string", "pattern": data_uri_pattern(f.media)}]}


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


def _text_problem(value: str) -> str | None:
    """Why a text to read is refused, or None: TEXT_PATTERN, said in words."""
    if _TEXT.fullmatch(value):
        return None
    bad = next((i for i, c in enumerate(value) if re.fullmatch(f"[{_CONTROL}]", c)), None)
    if bad is not None:
        return f"must not contain control characters (found {value[bad]!r} at {bad})"
    return "must not be empty or only whitespace"


def _check_string(f: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be a string, got {json_type(value)}"
    if f.max_length is not None and len(value) > f.max_length:
        return None, f"must be at most {f.max_length} characters, got {len(value)}"
    if f.pattern and not re.fullmatch(f.pattern, value):
        return None, f"has an invalid format (must match {f.pattern})"
    if f.nonblank:
        problem = _text_problem(value)
        if problem:
            return None, problem
    return value, None


def _check_url(f: Field, value: Any) -> tuple[Any, str | None]:
    """The URL grammar of WEB_URL_PATTERN (what the document says), then the uploads' and data URIs'
    (chalicelib/api/files.py decides whether an upload is the key's own)."""
    if not isinstance(value, str):
        return None, f"must be a URL string, got {json_type(value)}"
    if f.media and value.startswith("upload://"):
        if not re.fullmatch(UPLOAD_URL_PATTERN, value):
            return None, "an upload is upload://up_ and 16 hexadecimal digits, as POST /uploads returned it"
        return value, None
    if f.media and value.startswith("data:"):
        if not re.fullmatch(data_uri_pattern(f.media), value):
            types = " or ".join(f"{t}/*" for t in MEDIA_TOP_TYPES[f.media])
            return None, (f"a data URI here is data:<{types}, lower case>;base64,<data>, its base64 complete "
                          "and padded")
        return value, None
    if len(value) > MAX_URL_LEN:
        return None, f"must be at most {MAX_URL_LEN} characters, got {len(value)}"
    if not value.isascii():
        return None, "must be ASCII: percent-encode other characters (and use the punycode of a host)"
    bad = next((c for c in value if ord(c) <= 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return None, f"must not contain spaces or control characters (found {bad!r} at {value.index(bad)})"
    if not value.startswith(("http://", "https://")):
        return None, ("must be an http(s) URL, an upload (upload://ID) or a data: URI" if f.media
                      else "must be an http or https URL")
    if not _WEB_URL.fullmatch(value):
        return None, ("is not a valid URL: http(s)://host[:port][/path], the host a name or a [bracketed] "
                      "IPv6 address, the port 0-65535")
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
    elif not is_number:
        return None, f"must be a number, got {json_type(value)}"
    elif not math.isfinite(value):
        return None, f"must be a finite number, got {value}"
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
        if not isinstance(item, str):
            return None, f"item {index} must be a string, got {json_type(item)}"
        if f.choices:
            if item not in f.choices:
                return None, f"item {index} must be one of {', '.join(f.choices)}"
            continue
        if f.max_length is not None and len(item) > f.max_length:
            return None, f"item {index} must be at most {f.max_length} characters"
        problem = _text_problem(item)
        if problem:
            return None, f"item {index} {problem}"
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
          "'progress' (at most one per job every 5 s, best effort). Needs notify_url.", max_items=3,
          choices=NOTIFY_EVENTS),
    Field("complete_in", "integer", "Deadline in seconds: a job that has not started by then ends timed_out "
          "without using a GPU.", default=3600, minimum=60, maximum=86400),
    Field("max_time", "integer", "Execution limit in seconds once the job runs.",
          default=DEFAULT_MAX_TIME_S, minimum=60, maximum=7200),
    Field("metadata", "object", "Anything of the client's (at most 4 KiB as JSON), returned with the job "
          "and in its webhooks.", max_length=4096),
)
# The rules between common fields, as the document states them (COMMON_RULE checks the same).
COMMON_SCHEMA_RULES: tuple[dict[str, Any], ...] = ({"if": given("notify_events"), "then": given("notify_url")},)


def common_rule(params: dict[str, Any], problems: list[FieldProblem]) -> None:
    if params.get("notify_events") is not None and not params.get("notify_url"):
        problems.append(FieldProblem("notify_events", "needs notify_url"))


def fields_schema(fields: tuple[Field, ...], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of a body made of ``fields`` (their aliases too; never both a field and its alias)."""
    properties: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    for f in fields:
        properties[f.name] = f.json_schema()
        if defaults and f.name in defaults:
            properties[f.name]["default"] = defaults[f.name]
        for alias in f.aliases:
            properties[alias] = {**f.json_schema(), "description": f"Alias of `{f.name}`."}
            rules.append({"not": {"required": [f.name, alias]}})
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "required": [f.name for f in fields if f.required], "properties": properties}
    if rules:
        schema["allOf"] = rules
    return schema


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
                 common: bool = True, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate a request body against ``fields`` and return its canonical parameters; ``common``:
    a job's body, whose common fields (notify_*, complete_in, max_time) are checked together too.
    ``defaults`` overrides fields' own defaults (DEFAULT_COMPLETE_IN, DEFAULT_MAX_TIME).

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
        elif defaults and spec.name in defaults:
            params[spec.name] = defaults[spec.name]
        elif spec.default is not None:
            params[spec.name] = spec.default
    if not problems:
        if common:
            common_rule(params, problems)
        rule(params, problems)
    if problems:
        raise ValidationError(problems)
    return params
