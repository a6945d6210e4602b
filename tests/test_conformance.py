"""The API does what its OpenAPI document says: schemathesis against the real API over HTTP.

The API runs as production runs it (gunicorn, a real key, ``ALLOW_PRIVATE_URLS=false``), with
waits capped at 1 s (``MAX_WAIT_S``) and no worker, so jobs stay queued and each case is quick.
Every check runs, with valid and invalid data, a bounded number of examples per operation.

Exempt from the positive-data check, by name, are the refusals no schema can express (each is a
400 naming its field and documented in the operation's description): ``EXEMPT`` below.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from chalicelib import __version__
from chalicelib.api.openapi import DocContext, build_openapi
from chalicelib.jobs.spec import builtin
from chalicelib.settings import Settings
from devtools import servers
from tests.helpers import Stack

# Field problems a schema cannot express, each by the reason the API gives.
EXEMPT = {
    "SSRF guard": re.compile(r"^refused: "),
    "an upload of another key, unknown or expired": re.compile(r"^(no upload up_|upload up_\S+ (has expired|was "
                                                               r"never uploaded|is |expires))"),
    "a voice of another key, or unknown": re.compile(r"^no voice voice_"),
    "metadata over 4 KiB as JSON": re.compile(r"^must be at most 4096 bytes as JSON"),
    "a voice's clip that cannot be fetched": re.compile(r"^the clip "),
}
# The API's settings: production-like (the SSRF guard on), waits of at most 1 s.
SETTINGS = {"ALLOW_PRIVATE_URLS": "false", "MAX_WAIT_S": "1", "UNAUTHENTICATED_RATE_PER_S": "0", "FETCH_TIMEOUT_S": "2"}
EXAMPLES = 25  # per operation and phase; the whole run stays near a minute


NESTED_TOO_DEEPLY = "request body is nested too deeply"  # Python's parser's depth, said in the description


def exempt(response: Any) -> bool:
    """A 400 whose every field problem is one the document can only describe."""
    if response.status_code != 400:
        return False
    try:
        if response.json()["error"]["message"] == NESTED_TOO_DEEPLY:
            return True
        fields = response.json()["error"]["fields"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(fields) and all(any(p.match(f["reason"]) for p in EXEMPT.values()) for f in fields)


def positive_data_accepted_but_where_exempt(ctx: Any, response: Any, case: Any) -> bool | None:
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError:
        if exempt(response):
            return None
        raise


@pytest.fixture(scope="module")
def conformance_api(redis_server: servers.Server, moto: servers.Server, log_dir: Path) -> Iterator[Stack]:
    stack = Stack(env=servers.stack_env(redis_url=f"redis://127.0.0.1:{redis_server.port}/5", s3_url=moto.url,
                                        **SETTINGS),
                  log_dir=log_dir)
    stack.start_api()
    yield stack
    # What the run made: its jobs are cancelled (the stack's Redis database is dropped with it).
    queued = stack.http.get(f"{stack.url}/jobs", params={"status": "queued", "limit": 100}, timeout=10).json()
    for job in queued["jobs"]:
        stack.http.post(f"{stack.url}/jobs/{job['id']}/cancel", timeout=10)
    stack.close()


# The document as the API under test renders it (its settings below), loaded when the tests are
# collected; test_the_document_served_is_the_one_tested checks the API serves exactly this one.
DOCUMENT = json.loads(json.dumps(build_openapi(__version__, DocContext.of(builtin(), Settings.from_env(
    servers.stack_env(redis_url="redis://unused", s3_url="http://unused", **SETTINGS))))))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict({
    "request-timeout": 10,
    "generation": {"mode": "all", "max-examples": EXAMPLES},
    "phases": {"stateful": {"enabled": False}},
}))


def test_the_document_served_is_the_one_tested(conformance_api: Stack) -> None:
    assert requests.get(f"{conformance_api.url}/openapi.json", timeout=10).json() == DOCUMENT


def test_every_route_is_documented() -> None:
    """Each route and method of the app is an operation of the document; the one exception is the first
    version's POST /job/{job_id}, there only for keys in compatibility mode v1 (a 404 for every other)."""
    from app import app

    routed = {(method.lower(), path) for path, entries in app.routes.items() for method in entries}
    documented = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}
    assert routed - documented == {("post", "/job/{job_id}")}
    assert documented - routed == set()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_does_what_its_document_says(case: Any, conformance_api: Stack) -> None:
    case.call_and_validate(base_url=conformance_api.url,
                           headers={"Authorization": f"Bearer {conformance_api.key}"},
                           excluded_checks=[positive_data_acceptance],
                           additional_checks=[positive_data_accepted_but_where_exempt])


def test_every_documented_example_is_valid_against_its_schema(conformance_api: Stack) -> None:
    """Client-side validation of every example the document carries (what a generated client sends)."""
    import jsonschema

    doc = requests.get(f"{conformance_api.url}/openapi.json", timeout=10).json()
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if not content or "example" not in content:
                continue
            ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
            validator = jsonschema.Draft202012Validator({**doc["components"]["schemas"][ref],
                                                         "components": doc["components"]})
            errors = list(validator.iter_errors(content["example"]))
            assert not errors, (method, path, [e.message for e in errors])
            # And the API takes it: a documented example is never refused.
            reply = conformance_api.http.post(f"{conformance_api.url}{path}", json=content["example"], timeout=10)
            assert reply.status_code in (200, 201, 202), (path, reply.text)
            checked += 1
    assert checked >= 4
