"""Clients of the first version keep working: a key in compatibility mode v1.

``V1_PAIRS`` are the first version's request/response pairs, written from its documented
behaviour (the seed document, shared/PROTOCOLS.md) and from its own code's rules as the issue
lists them: ``float()``/``int()`` on numbers, unknown keys ignored, references ignored unless the
voice clones, 200 on submit, ``{"error": "<message>"}`` bodies, 400 "Job not completed" with the
status, 400 "Invalid job ID format", ``POST /job/{id}`` and ``GET /``. Each is replayed against a
v1 key, and the same request against a normal key shows the strict answer is unchanged.
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests

from chalicelib.jobs.models import JobStatus
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from devtools import servers
from tests.helpers import Stack

AUDIO = "https://media.example.com/talk.mp3"
IMAGE = "https://media.example.com/face.jpg"
UNKNOWN = str(uuid.uuid4())

# (what, method, path, body, the first version's status, a check of its body, the strict API's status)
Check = Callable[[Any], bool]
V1_PAIRS: list[tuple[str, str, str, Any, int, Check, int]] = [
    ("numeric strings are numbers", "POST", "/csm", {"text": "Hello", "temperature": "0.7", "topk": "40",
                                                       "max_time": "600", "complete_in": "3600"},
     200, lambda b: b["status"] == "queued" and "id" in b, 400),
    ("unknown keys are ignored", "POST", "/whisper", {"audio_url": AUDIO, "priority": "high", "user": {"id": 7}},
     200, lambda b: b["status"] == "queued", 400),
    ("references without cloning are ignored", "POST", "/csm",
     {"text": "Hi", "voice": "conversational_a", "reference_audio_url": AUDIO, "reference_text": "words"},
     200, lambda b: b["status"] == "queued", 400),
    ("max_time beyond the default complete_in", "POST", "/whisper", {"audio_url": AUDIO, "max_time": 7200},
     200, lambda b: b["status"] == "queued", 202),
    ("the seed's csm, cloning", "POST", "/csm", {"text": "Hi", "audio_url": AUDIO, "audio_text": "words"},
     200, lambda b: b["status"] == "queued", 202),
    ("a missing field, as a message", "POST", "/whisper", {"model": "small"},
     400, lambda b: isinstance(b["error"], str) and "audio_url" in b["error"], 400),
    ("a number that is not one", "POST", "/csm", {"text": "Hi", "temperature": "warm"},
     400, lambda b: isinstance(b["error"], str) and "temperature" in b["error"], 400),
    ("clone without a clip", "POST", "/csm", {"text": "Hi", "voice": "clone"},
     400, lambda b: isinstance(b["error"], str) and "voice" in b["error"], 400),
    ("a malformed id", "GET", "/status/not-a-job-id", None,
     400, lambda b: b == {"error": "Invalid job ID format"}, 404),
    ("a malformed id, result", "GET", "/result/12345", None,
     400, lambda b: b == {"error": "Invalid job ID format"}, 404),
    ("an unknown id", "GET", f"/status/{UNKNOWN}", None,
     404, lambda b: isinstance(b["error"], str) and UNKNOWN in b["error"], 404),
    ("the service is running", "GET", "/", None,
     200, lambda b: b["status"] == "C3 Render API is running" and b["timestamp"].endswith("Z"), 200),
]


@dataclass
class Clients:
    """The API, with a key in compatibility mode v1 and a normal (strict) one."""

    stack: Stack
    v1: str
    strict: str

    @property
    def url(self) -> str:
        return self.stack.url

    def call(self, key: str, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", json=body, timeout=10, headers={"X-C3-RENDER-KEY": key})

    def v1_json(self, method: str, path: str, body: Any = None) -> Any:
        return self.call(self.v1, method, path, body).json()


@pytest.fixture(scope="module")
def compat(redis_server: servers.Server, moto: servers.Server, log_dir: Any) -> Iterator[Clients]:
    stack = Stack(env=servers.stack_env(redis_url=f"redis://127.0.0.1:{redis_server.port}/6", s3_url=moto.url,
                                        C3_RENDER_KEY="first-version-static-key", DEFAULT_COMPLETE_IN="900"),
                  log_dir=log_dir)
    redis.Redis.from_url(stack.env["REDIS_URL"]).flushdb()
    stack.start_api()
    v1, _ = stack.new_key("a first-version client", compat="v1")
    yield Clients(stack, v1=v1, strict=stack.key)
    stack.close()


@pytest.mark.parametrize("pair", V1_PAIRS, ids=[p[0] for p in V1_PAIRS])
def test_the_first_versions_answers_for_a_v1_key_and_the_strict_ones_for_others(
        compat: Clients, pair: tuple[str, str, str, Any, int, Check, int]) -> None:
    _, method, path, body, v1_status, v1_body, strict_status = pair
    v1 = compat.call(compat.v1, method, path, body)
    assert v1.status_code == v1_status and v1_body(v1.json()), v1.text
    strict = compat.call(compat.strict, method, path, body)
    assert strict.status_code == strict_status, strict.text
    if strict_status >= 400 and path != "/":
        assert isinstance(strict.json()["error"], dict)  # the strict error shape, unchanged


def test_numbers_are_read_and_unknowns_dropped_as_the_first_version_did(compat: Clients) -> None:
    v1 = compat.call(compat.v1, "POST", "/csm",
                     {"text": "Hi", "temperature": "0.7", "max_time": "600", "voice": "random_voice",
                      "audio_url": AUDIO, "audio_text": "ignored", "colour": "red"}).json()
    seen = compat.v1_json("GET", f"/jobs/{v1['id']}")
    assert seen["input"]["temperature"] == 0.7 and seen["input"]["max_time"] == 600
    assert seen["input"]["voice"] == "random" and "reference_audio_url" not in seen["input"]
    assert seen["input"]["complete_in"] == 900  # DEFAULT_COMPLETE_IN, the first version's setting


def test_an_unfinished_result_and_service_set_statuses_read_as_the_first_version_said(compat: Clients) -> None:
    v1_headers = {"X-C3-RENDER-KEY": compat.v1}
    job_id = compat.call(compat.v1, "POST", "/whisper", {"audio_url": AUDIO}).json()["id"]
    early = requests.get(f"{compat.url}/result/{job_id}", headers=v1_headers, timeout=10)
    assert early.status_code == 400 and early.json() == {"error": "Job not completed", "status": "queued"}
    # The worker's own step: it ran out of max_time. The first version called that failed.
    store = JobStore.from_url(compat.stack.env["REDIS_URL"], result_ttl_s=3600)
    assert store.start(job_id, run_token="t", lease_s=30, worker_id="w").action == "run"
    assert store.finish(job_id, run_token="t", status=JobStatus.TIMED_OUT,
                        error="the job exceeded its max_time of 60 s")
    v1 = requests.get(f"{compat.url}/status/{job_id}", headers=v1_headers, timeout=10).json()
    assert v1["status"] == "failed" and v1["error"] == "timed out: the job exceeded its max_time of 60 s"
    result = requests.get(f"{compat.url}/result/{job_id}", headers=v1_headers, timeout=10).json()
    assert result["status"] == "failed" and result["error"].startswith("timed out")
    listed = requests.get(f"{compat.url}/jobs", headers=v1_headers, timeout=10).json()["jobs"]
    assert next(j for j in listed if j["id"] == job_id)["status"] == "failed"
    # A client cancel, too.
    other = compat.call(compat.v1, "POST", "/whisper", {"audio_url": AUDIO}).json()["id"]
    cancelled = requests.post(f"{compat.url}/jobs/{other}/cancel", headers=v1_headers, timeout=10).json()
    assert cancelled["status"] == "failed" and cancelled["error"].startswith("cancelled")
    # Its filter reads the statuses as it is shown them.
    failed = {j["id"] for j in requests.get(f"{compat.url}/jobs", params={"status": "failed"}, headers=v1_headers,
                                            timeout=10).json()["jobs"]}
    assert {job_id, other} <= failed
    assert requests.get(f"{compat.url}/jobs", params={"status": "cancelled"}, headers=v1_headers,
                        timeout=10).json()["jobs"] == []
    # Refused before the key was read (a body that is not JSON, by the framework): its error shape too.
    refused = requests.post(f"{compat.url}/csm", data='{"text": "hi"}', timeout=10,
                            headers={**v1_headers, "Content-Type": "text/plain"})
    assert refused.status_code == 415 and isinstance(refused.json()["error"], str), refused.text
    # A normal key sees the statuses as they are.
    strict_id = compat.call(compat.strict, "POST", "/whisper", {"audio_url": AUDIO}).json()["id"]
    strict = compat.call(compat.strict, "POST", f"/jobs/{strict_id}/cancel").json()
    assert strict["status"] == "cancelled"


def test_post_job_marks_any_job_as_the_first_versions_frontend_did(compat: Clients) -> None:
    v1_headers = {"X-C3-RENDER-KEY": compat.v1}

    def submit() -> str:
        return str(compat.call(compat.v1, "POST", "/analyze", {"image_url": IMAGE}).json()["id"])

    def mark(job_id: str, body: Any) -> requests.Response:
        return requests.post(f"{compat.url}/job/{job_id}", json=body, headers=v1_headers, timeout=10)

    queued = submit()
    marked = mark(queued, {"status": "timed_out", "error": "the frontend gave up"})
    assert marked.status_code == 200 and marked.json()["status"] == "timed_out", marked.text
    view = requests.get(f"{compat.url}/status/{queued}", headers=v1_headers, timeout=10).json()
    assert view["status"] == "timed_out" and view["error"] == "the frontend gave up"  # as it was set
    assert requests.get(f"{compat.url}/result/{queued}", headers=v1_headers, timeout=10).json()["status"] == "timed_out"
    # A finished job may be marked too, and remove_data deletes it and all it left.
    store = JobStore.from_url(compat.stack.env["REDIS_URL"], result_ttl_s=3600)
    done = submit()
    store.start(done, run_token="t", lease_s=30, worker_id="w")
    store.finish(done, run_token="t", status=JobStatus.SUCCESS, result={"text": "a red square"})
    assert mark(done, {"status": "failed"}).json()["previous_status"] == "success"
    assert requests.get(f"{compat.url}/status/{done}", headers=v1_headers, timeout=10).json()["status"] == "failed"
    gone = submit()
    assert mark(gone, {"status": "cancelled", "remove_data": True}).json()["data_removed"] is True
    after = requests.get(f"{compat.url}/status/{gone}", headers=v1_headers, timeout=10)
    assert after.status_code == 404 and isinstance(after.json()["error"], str)
    # Bad marks, in the first version's error shape; and the route is not there for a strict key.
    bad = mark(submit(), {"status": "success"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]
    assert mark(str(uuid.uuid4()), {"status": "failed"}).status_code == 404
    strict = compat.call(compat.strict, "POST", f"/job/{submit()}", {"status": "failed"})
    assert strict.status_code == 404 and "compatibility mode v1" in strict.json()["error"]["message"]


def test_the_first_versions_static_key_and_settings(compat: Clients) -> None:
    static = requests.post(f"{compat.url}/whisper", json={"audio_url": AUDIO, "extra": 1}, timeout=10,
                           headers={"X-C3-RENDER-KEY": "first-version-static-key"})
    assert static.status_code == 200 and static.json()["status"] == "queued", static.text  # a v1 key
    me = requests.get(f"{compat.url}/me", headers={"X-C3-RENDER-KEY": "first-version-static-key"}, timeout=10).json()
    assert me["compat"] == "v1" and me["name"] == "first version (C3_RENDER_KEY)"
    # c3render keys import-v1 records the same key (the same id: importing twice changes nothing).
    out = subprocess.run([sys.executable, "-m", "chalicelib.api.cli", "keys", "import-v1"], capture_output=True,
                         text=True, env={**compat.stack.env, "PATH": "/usr/bin:/bin"}, timeout=30, check=True)
    assert f'"id": "{me["id"]}"' in out.stdout
    # The first version's settings, read as aliases.
    settings = Settings.from_env({"ENV_FILE": "/nonexistent", "DEFAULT_COMPLETE_IN": "600", "DEFAULT_MAX_TIME": "300",
                                  "MINIO_PUBLIC_URL": "https://files.example.com", "C3_RENDER_KEY": "k"})
    assert (settings.default_complete_in, settings.default_max_time) == (600, 300)
    assert settings.s3_public_endpoint_url == "https://files.example.com" and settings.c3_render_key == "k"
    doc = requests.get(f"{compat.url}/openapi.json", timeout=10).json()
    assert doc["components"]["schemas"]["WhisperRequest"]["properties"]["complete_in"]["default"] == 900


def test_marking_a_running_job_stops_its_run_and_keeps_the_mark(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ECHO_DELAY_S="6", WORKER_HEARTBEAT_S="0.3")
    stack.start_api()
    worker = stack.start_worker()
    key, _ = stack.new_key("a first-version client", compat="v1")
    headers = {"X-C3-RENDER-KEY": key}
    job_id = requests.post(f"{stack.url}/csm", json={"text": "Hello there."}, headers=headers, timeout=10).json()["id"]
    deadline = time.monotonic() + 20
    while requests.get(f"{stack.url}/status/{job_id}", headers=headers, timeout=10).json()["status"] != "running" \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    marked = requests.post(f"{stack.url}/job/{job_id}", json={"status": "failed", "error": "the frontend gave up"},
                           headers=headers, timeout=10)
    assert marked.status_code == 200 and marked.json()["previous_status"] == "running", marked.text
    deadline = time.monotonic() + 10
    log = worker.log_path
    while "ended elsewhere" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "ended elsewhere" in log.read_text()  # its run stopped at the next heartbeat, not requeued
    time.sleep(1)
    view = requests.get(f"{stack.url}/status/{job_id}", headers=headers, timeout=10).json()
    assert view["status"] == "failed" and view["error"] == "the frontend gave up"  # the mark stays
    assert "requeued" not in log.read_text() and "given back to the queue" not in log.read_text()
    assert stack.http.get(f"{stack.url}/health").json()["queue"]["depth"] == 0
    # Its run stored nothing that would stay behind.
    listed = stack_objects(stack, f"results/{job_id}/")
    assert listed == []


def stack_objects(stack: Stack, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack.env["S3_ENDPOINT_URL"], aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=stack.env["S3_BUCKET"], Prefix=prefix).get("Contents", [])]
