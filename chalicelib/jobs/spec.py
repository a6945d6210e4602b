"""One declaration per job type: its request fields, inputs, output and node service.

Each module in ``chalicelib/jobs/types/`` defines ``SPEC = JobSpec(...)``; from the
specs the API registers its submit routes, checks every URL field at submit
(the SSRF guard), renders OpenAPI, and the worker knows which node service a
job needs and what it produces. ``JOB_PLUGINS`` names further modules with a
``SPEC`` (and an ``ENGINE`` for the worker), for job types kept outside the
package: the tests add one that way.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from types import ModuleType
from typing import Any

from chalicelib.errors import ConfigError
from chalicelib.jobs import types as jobtypes
from chalicelib.jobs.schemas import (
    COMMON_FIELDS,
    COMMON_SCHEMA_RULES,
    Field,
    Rule,
    accepted_names,
    fields_schema,
    no_rule,
    parse_fields,
)

OUTPUTS = ("file", "text")


@dataclass(frozen=True)
class JobSpec:
    """A job type. ``name`` is its route (``POST /<name>``) and the ``type`` of its jobs."""

    name: str
    summary: str
    fields: tuple[Field, ...]  # the type's own request fields; the common ones are added
    output: str  # "file": a stored file, read through result_url; "text": a text result
    service: str | None = None  # the node service it runs on (a *_URL setting); None: no GPU node
    rule: Rule = no_rule  # cross-field checks; may fill derived defaults
    schema_rules: tuple[dict[str, Any], ...] = ()  # the same rules as JSON Schema, for the document
    example: dict[str, Any] = field(default_factory=dict)  # a valid request body, for the docs

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ConfigError(f"job type {self.name}: output must be one of {', '.join(OUTPUTS)}")

    @cached_property
    def all_fields(self) -> tuple[Field, ...]:
        return self.fields + COMMON_FIELDS

    @cached_property
    def names(self) -> dict[str, Field]:
        return accepted_names(self.all_fields)

    @property
    def produces_file(self) -> bool:
        return self.output == "file"

    @property
    def url_fields(self) -> tuple[Field, ...]:
        """Every URL the service will reach (inputs and notify_url): checked at submit."""
        return tuple(f for f in self.all_fields if f.kind == "url")

    @property
    def input_fields(self) -> tuple[Field, ...]:
        """The URL fields the worker fetches as inputs, each with its media kind."""
        return tuple(f for f in self.all_fields if f.kind == "url" and f.media)

    def parse(self, body: Any, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Canonical parameters of a request body (``defaults`` over the fields' own). Raises
        :class:`ValidationError`."""
        return parse_fields(self.all_fields, self.names, self.rule, body, defaults=defaults)

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.all_fields if f.default is not None}

    def json_schema(self, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The request body's JSON Schema: every field and alias, and the rules between them
        (``schema_rules``, the common ones too), so that what it allows the API accepts."""
        schema = fields_schema(self.all_fields, defaults)
        rules = [*schema.get("allOf", []), *COMMON_SCHEMA_RULES, *self.schema_rules]
        if rules:
            schema["allOf"] = rules
        return schema


class Catalog:
    """The job types this process serves, by name."""

    def __init__(self, specs: Iterable[JobSpec]) -> None:
        self._specs: dict[str, JobSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ConfigError(f"job type {spec.name} is declared twice")
            self._specs[spec.name] = spec

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str) -> JobSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ConfigError(f"unknown job type {name!r}") from None

    def names(self) -> list[str]:
        return list(self._specs)


def builtin_modules() -> list[ModuleType]:
    """The modules of ``chalicelib/jobs/types``, in name order."""
    return [importlib.import_module(f"{jobtypes.__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(jobtypes.__path__), key=lambda i: i.name)]


def plugin_modules(names: Iterable[str]) -> list[ModuleType]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:
            raise ConfigError(f"JOB_PLUGINS: cannot import {name}: {err}") from err
    return modules


def _spec_of(module: ModuleType) -> JobSpec:
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, JobSpec):
        raise ConfigError(f"{module.__name__} declares no SPEC = JobSpec(...)")
    return spec


@cache
def builtin() -> Catalog:
    """The job types that ship with the service."""
    return Catalog(_spec_of(m) for m in builtin_modules())


def load(plugins: Iterable[str] = ()) -> Catalog:
    """The built-in job types and those of the ``JOB_PLUGINS`` modules."""
    plugins = tuple(plugins)
    if not plugins:
        return builtin()
    return Catalog([*builtin(), *(_spec_of(m) for m in plugin_modules(plugins))])
