"""The API over HTTP, under gunicorn: validation, errors, idempotency, listing, OpenAPI."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from devtools import servers
from tests.helpers import Documented, Stack

AUDIO = "https://media.example.com/a.mp3"
IMAGE = "https://media.example.com/p.jpg"
VALID = {
    "csm": {"text": "Hello there."},
    "whisper": {"audio_url": AUDIO},
    "portrait": {"image_url": IMAGE, "audio_url": AUDIO},
    "analyze": {"image_url": IMAGE},
}


def fields_of(reply: requests.Response) -> dict[str, str]:
    body = reply.json()
    assert set(body) == {"error"}, body
    return {f["field"]: f["reason"] for f in body["error"].get("fields", [])}


@pytest.mark.parametrize("job_type", sorted(VALID))
def test_valid_submit_is_accepted_and_visible(api_module: Stack, job_type: str) -> None:
    reply = api_module.submit(job_type, VALID[job_type])
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["status"] == "queued" and body["type"] == job_type
    assert reply.headers["Location"] == f"/status/{body['id']}"
    status = api_module.status(body["id"])
    assert status["status"] == "queued" and status["attempt"] == 0 and "queue_position" in status
    result = api_module.http.get(f"{api_module.url}/result/{body['id']}")
    assert result.status_code == 409
    assert result.json()["error"] == {"code": "not_ready", "status": "queued",
                                      "message": f"job {body['id']} has no result yet: it is queued"}


BAD = [
    ("csm", {}, "text"),
    ("csm", {"text": 5}, "text"),
    ("csm", {"text": "x" * 5001}, "text"),
    ("csm", {"text": "hi", "monologue": ["a"]}, "text"),
    ("csm", {"monologue": []}, "monologue"),
    ("csm", {"monologue": ["ok", ""]}, "monologue"),
    ("csm", {"monologue": ["a"] * 51}, "monologue"),
    ("csm", {"text": "hi", "temperature": 2.5}, "temperature"),
    ("csm", {"text": "hi", "temperature": "hot"}, "temperature"),
    ("csm", {"text": "hi", "topk": 0}, "topk"),
    ("csm", {"text": "hi", "topk": 1.5}, "topk"),
    ("csm", {"text": "hi", "topk": True}, "topk"),
    ("csm", {"text": "hi", "max_audio_length": 999}, "max_audio_length"),
    ("csm", {"text": "hi", "pause_duration": 501}, "pause_duration"),
    ("csm", {"text": "hi", "voice": "robot"}, "voice"),
    ("csm", {"text": "hi", "voice": "clone"}, "voice"),
    ("csm", {"text": "hi", "audio_url": AUDIO}, "reference_text"),
    ("csm", {"text": "hi", "audio_text": "words"}, "reference_audio_url"),
    ("csm", {"text": "hi", "audio_url": AUDIO, "audio_text": "w", "voice": "conversational_a"}, "voice"),
    ("csm", {"text": "hi", "audio_url": AUDIO, "reference_audio_url": AUDIO, "audio_text": "w"},
     "reference_audio_url"),
    ("csm", {"text": "hi", "colour": "red"}, "colour"),
    ("whisper", {}, "audio_url"),
    ("whisper", {"audio_url": None}, "audio_url"),
    ("whisper", {"audio_url": "ftp://x/a.mp3"}, "audio_url"),
    ("whisper", {"audio_url": "not a url"}, "audio_url"),
    ("whisper", {"audio_url": "https://x.example/" + "a" * 2100}, "audio_url"),
    ("whisper", {"audio_url": AUDIO, "model": "huge"}, "model"),
    ("whisper", {"audio_url": AUDIO, "task": "summarise"}, "task"),
    ("whisper", {"audio_url": AUDIO, "language": "english!"}, "language"),
    ("whisper", {"audio_url": AUDIO, "complete_in": 59}, "complete_in"),
    ("whisper", {"audio_url": AUDIO, "max_time": 7201}, "max_time"),
    ("whisper", {"audio_url": "HTTP://media.example.com/a.mp3"}, "audio_url"),
    ("whisper", {"audio_url": "https://media.example.com:65536/a.mp3"}, "audio_url"),
    ("whisper", {"audio_url": "https://[::g]/a.mp3"}, "audio_url"),
    ("whisper", {"audio_url": "data:image/png;base64,iVBORw0K"}, "audio_url"),
    ("whisper", {"audio_url": "data:audio/wav;base64,UklGR"}, "audio_url"),
    ("whisper", {"audio_url": "upload://up_123"}, "audio_url"),
    ("whisper", {"audio_url": AUDIO, "notify_url": "https://hooks.example.com/x", "notify_events": ["done"]},
     "notify_events"),
    ("analyze", {"image_url": IMAGE, "prompt": "what\x00is this"}, "prompt"),
    ("whisper", {"audio_url": AUDIO, "notify_url": "javascript:alert(1)"}, "notify_url"),
    ("whisper", {"audio_url": AUDIO, "notify_events": ["started"]}, "notify_events"),
    ("portrait", {"image_url": IMAGE}, "audio_url"),
    ("portrait", {"image_url": IMAGE, "audio_url": AUDIO, "text": "hi"}, "audio_url"),
    ("portrait", {"audio_url": AUDIO}, "image_url"),
    ("portrait", {"image_url": IMAGE, "audio_url": AUDIO, "voice": "random"}, "voice"),
    ("analyze", {}, "image_url"),
    ("analyze", {"image_url": 42}, "image_url"),
    ("analyze", {"image_url": IMAGE, "prompt": "p" * 4001}, "prompt"),
    ("analyze", {"image_url": IMAGE, "model": "bad model name"}, "model"),
]


@pytest.mark.parametrize(("job_type", "body", "field"), BAD, ids=[f"{t}-{f}-{i}" for i, (t, _, f) in enumerate(BAD)])
def test_bad_fields_are_named(api_module: Stack, job_type: str, body: dict[str, Any], field: str) -> None:
    reply = api_module.submit(job_type, body)
    assert reply.status_code == 400, reply.text
    problems = fields_of(reply)
    assert field in problems, problems
    assert reply.json()["error"]["code"] == "validation_error"


def test_seed_and_first_version_field_names(api_module: Stack) -> None:
    seed_clone = {"text": "Hi.", "audio_url": AUDIO, "audio_text": "My voice.", "notify_url": "https://hooks.example.com/x"}
    assert api_module.submit("csm", seed_clone).status_code == 202
    first_version = {"monologue": ["One.", "Two."], "voice": "random_voice", "temperature": 1, "topk": 20,
                     "max_audio_length": 5000, "pause_duration": 0, "complete_in": 600, "max_time": 60}
    assert api_module.submit("csm", first_version).status_code == 202
    clone = {"text": "x", "voice": "clone", "reference_audio_url": AUDIO, "reference_text": "y"}
    assert api_module.submit("csm", clone).status_code == 202
    whisper = {"audio_url": AUDIO, "model": "large-v3", "task": "translate", "language": "de"}
    assert api_module.submit("whisper", whisper).status_code == 202
    assert api_module.submit("portrait", {"image_url": IMAGE, "text": "Hello", "voice": "conversational_b"}
                             ).status_code == 202
    assert api_module.submit("analyze", {"image_url": IMAGE, "prompt": "What colour?", "model": "llava:7b"}
                             ).status_code == 202


def test_http_level_errors(api_module: Stack) -> None:
    url = api_module.url
    requests = api_module.http  # authenticated session
    form = requests.post(f"{url}/csm", data="text=hi", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
    big = requests.post(f"{url}/csm", json={"text": "x" * 70000})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    broken = requests.post(f"{url}/csm", data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    array = requests.post(f"{url}/csm", json=["text"])
    assert array.status_code == 400 and "body" in fields_of(array)
    empty = requests.post(f"{url}/csm", data=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 400
    wrong_method = requests.get(f"{url}/csm")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert requests.delete(f"{url}/status/x").status_code == 405
    missing = requests.get(f"{url}/status/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert requests.get(f"{url}/result/nope").status_code == 404
    pasted = requests.get(f"{url}/status/4769c91d-d7\u2026")  # a cut id pasted with its ellipsis
    assert pasted.status_code == 404 and "4769c91d-d7\u2026 not found" in pasted.json()["error"]["message"]
    assert requests.post(f"{url}/jobs/nope/cancel").status_code == 404
    assert requests.get(f"{url}/no/such/route").status_code == 404
    # Every error body is the same compact JSON, whoever answers it: the app, the WSGI layer, gunicorn.
    for answer in (requests.get(f"{url}/jbos"), wrong_method, missing, pasted, form,
                   requests.get(f"{url}/status/" + "x" * 9000)):
        assert answer.content == json.dumps(answer.json(), separators=(",", ":")).encode(), answer.content
    assert requests.get(f"{url}/jobs?limit=0").status_code == 400
    assert "status" in fields_of(requests.get(f"{url}/jobs?status=done"))
    assert "cursor" in fields_of(requests.get(f"{url}/jobs?cursor=zzz"))


def test_idempotency_key(api_module: Stack) -> None:
    key = f"order-{time.time_ns()}"
    first = api_module.submit("whisper", {"audio_url": AUDIO}, **{"Idempotency-Key": key})
    again = api_module.submit("whisper", {"audio_url": AUDIO}, **{"Idempotency-Key": key})
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = api_module.submit("whisper", {"audio_url": AUDIO + "?v=2"}, **{"Idempotency-Key": key})
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    assert api_module.submit("whisper", {"audio_url": AUDIO}, **{"Idempotency-Key": "x" * 300}).status_code == 400


def test_cancel_and_list(api_module: Stack) -> None:
    ids = [api_module.submit("analyze", {"image_url": IMAGE}).json()["id"] for _ in range(3)]
    cancel = api_module.http.post(f"{api_module.url}/jobs/{ids[0]}/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    result = api_module.http.get(f"{api_module.url}/result/{ids[0]}")
    assert result.status_code == 200
    assert result.json() == {"id": ids[0], "type": "analyze", "status": "cancelled", "error": "cancelled by the client"}
    page = api_module.http.get(f"{api_module.url}/jobs", params={"type": "analyze", "limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]]
    rest = api_module.http.get(f"{api_module.url}/jobs",
                               params={"type": "analyze", "limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["jobs"][0]["id"] == ids[0]
    cancelled = api_module.http.get(f"{api_module.url}/jobs", params={"status": "cancelled"}).json()
    assert ids[0] in [j["id"] for j in cancelled["jobs"]]
    assert all(j["status"] == "cancelled" for j in cancelled["jobs"])


GOOD = [
    ("csm", {"text": "hi", "voice": "upload_voice", "audio_url": AUDIO, "audio_text": "w"}),
    ("csm", {"monologue": ["one", "two"], "text": None, "voice": None}),
    ("csm", {"text": "hi", "reference_audio_url": "data:audio/wav;base64,UklGRg==", "reference_text": "w"}),
    ("portrait", {"image_url": IMAGE, "text": "hi", "voice": "conversational_b"}),
    ("portrait", {"image_url": "data:image/png;base64,iVBO", "audio_url": AUDIO, "voice": None}),
    ("whisper", {"audio_url": AUDIO, "max_time": 7200}),  # a limit on running; complete_in bounds the start
    ("whisper", {"audio_url": "https://user:pw@[2606:4700::1111]:8443/a.mp3?x=1#y", "language": "pt-BR"}),
    ("whisper", {"audio_url": AUDIO, "notify_url": "https://hooks.example.com/x",
                 "notify_events": ["completed", "progress"], "metadata": {"order": 7}}),
    ("analyze", {"image_url": IMAGE, "prompt": "line one\nline two\t", "model": "llava:13b"}),
]


def test_the_document_and_the_api_agree_on_every_rule(api_module: Stack) -> None:
    """Each body above and in BAD, judged by the published schema and by the API: the same verdict."""
    documented = Documented(api_module)
    for job_type, body in [*GOOD, *((t, b) for t, b, _ in BAD)]:
        schema = f"{job_type.capitalize()}Request"
        try:
            documented.check(schema, body)
            valid = True
        except AssertionError:
            valid = False
        reply = api_module.submit(job_type, body)
        assert reply.status_code == (202 if valid else 400), (job_type, body, valid, reply.text)


@pytest.mark.parametrize(("value", "valid"), [
    ("2026-11-28T10:00:00Z", True), ("2026-11-28t10:00:00.5+01:30", True), ("1998-12-31T23:59:60Z", True),
    ("1998-12-31T15:59:60.123-08:00", True), ("1998-12-31T23:58:60Z", False), ("2023-02-29T00:00:00Z", False),
    ("2026-11-28T10:00:00", False), ("2026-11-28 10:00:00Z", False), ("0000-01-01T00:00:00Z", True)])
def test_times_are_read_as_json_schemas_date_time(api_module: Stack, value: str, valid: bool) -> None:
    """The created_after filter takes what format date-time allows (RFC 3339, a zone, leap seconds at 23:59:60 UTC)."""
    import jsonschema_rs

    assert jsonschema_rs.validator_for({"format": "date-time"}, validate_formats=True).is_valid(value) is valid
    reply = api_module.http.get(f"{api_module.url}/jobs", params={"created_after": value})
    assert reply.status_code == (200 if valid else 400), reply.text


def test_openapi_document_is_valid_and_matches_validation(api_module: Stack) -> None:
    from openapi_spec_validator import validate

    doc = requests.get(f"{api_module.url}/openapi.json").json()  # no key needed
    validate(doc)
    csm = doc["components"]["schemas"]["CsmRequest"]
    assert csm["additionalProperties"] is False
    assert {"text", "monologue", "audio_url", "audio_text", "reference_audio_url", "voice",
            "temperature", "topk", "max_audio_length", "pause_duration", "complete_in"} <= set(csm["properties"])
    assert csm["properties"]["temperature"]["maximum"] == 2
    assert doc["components"]["schemas"]["WhisperRequest"]["required"] == ["audio_url"]
    assert set(doc["paths"]) >= {"/csm", "/whisper", "/portrait", "/analyze", "/status/{job_id}",
                                 "/result/{job_id}", "/jobs", "/jobs/{job_id}/cancel", "/health"}


def test_health(api_module: Stack) -> None:
    reply = requests.get(f"{api_module.url}/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["redis"] == "ok" and body["queue"]["backend"] == "redis" and body["queue"]["depth"] >= 0


def test_redis_down_gives_503_quickly_and_recovers(moto: servers.Server, log_dir: Any) -> None:
    port = servers.free_port()
    rds = servers.start_redis(port, log_dir=log_dir)
    stack = Stack(env=servers.stack_env(redis_url=f"redis://127.0.0.1:{port}/0", s3_url=moto.url), log_dir=log_dir)
    try:
        stack.start_api()
        assert stack.submit("whisper", {"audio_url": AUDIO}).status_code == 202
        rds.kill()
        for path, call in (("submit", lambda: stack.submit("whisper", {"audio_url": AUDIO})),
                           ("status", lambda: stack.http.get(f"{stack.url}/status/x", timeout=5)),
                           ("health", lambda: requests.get(f"{stack.url}/health", timeout=5))):
            started = time.monotonic()
            reply = call()
            elapsed = time.monotonic() - started
            assert reply.status_code == 503, (path, reply.text)
            assert reply.json()["status" if path == "health" else "error"], reply.text
            assert elapsed < 1.0, (path, elapsed)
        rds = servers.start_redis(port, log_dir=log_dir)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if stack.submit("whisper", {"audio_url": AUDIO}).status_code == 202:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the API did not recover after Redis came back")
        assert requests.get(f"{stack.url}/health").status_code == 200
    finally:
        stack.close()
        rds.stop()
