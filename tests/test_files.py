"""Files in and out: uploads, data URIs, inputs checked before a node, lasting links, delete, retry, voices."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import requests
from standardwebhooks.webhooks import Webhook

from chalicelib.security.filelinks import FileLinks
from devtools import servers
from tests.helpers import DEVNODE_KEY, Stack
from tests.media_fixtures import FileServer
from tests.receiver import Receiver

FAKE_AUDIO = "https://media.example.com/a.mp3"


@pytest.fixture
def real(make_stack: Callable[..., Stack], devnode: servers.Server) -> Stack:
    """The API and a worker with the real engines on the devnode (a static node)."""
    stack = make_stack("redis", **servers.devnode_env(devnode, DEVNODE_KEY), WORKER_LEASE_S="20")
    stack.start_api()
    stack.start_worker()
    return stack


def upload(stack: Stack, path: Path, content_type: str, *, key: str | None = None) -> dict[str, Any]:
    """An upload made as a client makes it: ask for one, then PUT the bytes straight to the bucket."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    reply = stack.http.post(f"{stack.url}/uploads", json={"filename": path.name, "content_type": content_type,
                                                          "size": path.stat().st_size}, headers=headers)
    assert reply.status_code == 201, reply.text
    made = dict(reply.json())
    put = requests.put(made["upload_url"], data=path.read_bytes(), headers=made["upload_headers"], timeout=30)
    assert put.status_code == 200, put.text
    return made


def data_uri(path: Path, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def bucket(stack: Stack) -> Any:
    return boto3.client("s3", endpoint_url=stack.env["S3_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def objects(stack: Stack, prefix: str) -> list[str]:
    listed = bucket(stack).list_objects_v2(Bucket=stack.env["S3_BUCKET"], Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_an_upload_feeds_a_job_from_the_bucket(real: Stack, inputs: FileServer) -> None:
    made = upload(real, inputs.root / "reference.wav", "audio/wav")
    assert made["url"].startswith("upload://up_") and made["expires_at"].endswith("Z")
    assert real.http.get(f"{real.url}/uploads/{made['id']}").json()["uploaded"] is True
    job = real.submit("whisper", {"audio_url": made["url"]}, Prefer="wait=60").json()
    assert job["status"] == "success", job
    assert job["input"]["audio_url"] == made["url"]
    fetched = next(e for e in real.http.get(f"{real.url}/jobs/{job['id']}/events").json()["events"]
                   if e["type"] == "inputs_fetched")
    assert fetched["inputs"][0]["bytes"] == (inputs.root / "reference.wav").stat().st_size
    # Another key cannot use it, or see it.
    other, _ = real.new_key("someone else")
    refused = requests.post(f"{real.url}/whisper", json={"audio_url": made["url"]},
                            headers={"Authorization": f"Bearer {other}"}, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"]["fields"][0]["field"] == "audio_url"
    assert requests.get(f"{real.url}/uploads/{made['id']}", headers={"Authorization": f"Bearer {other}"},
                        timeout=5).status_code == 404
    # An image upload is refused where audio is wanted, and the kinds and sizes are checked up front.
    image = upload(real, inputs.root / "red.png", "image/png")
    wrong = real.submit("whisper", {"audio_url": image["url"]})
    assert wrong.status_code == 400 and "takes audio" in wrong.json()["error"]["fields"][0]["reason"]
    for body, field in (({"filename": "a.txt", "content_type": "text/plain", "size": 3}, "content_type"),
                        ({"filename": "a.png", "content_type": "image/png", "size": 10 ** 9}, "size"),
                        ({"filename": "a.mp3", "content_type": "audio/mpeg", "size": 5, "x": 1}, "x")):
        reply = real.http.post(f"{real.url}/uploads", json=body)
        assert reply.status_code == 400 and reply.json()["error"]["fields"][0]["field"] == field, reply.text


def test_an_upload_never_put_fails_the_job_before_any_node(real: Stack) -> None:
    made = real.http.post(f"{real.url}/uploads", json={"filename": "talk.mp3", "content_type": "audio/mpeg",
                                                       "size": 1000}).json()
    job = real.submit("whisper", {"audio_url": made["url"]}, Prefer="wait=30").json()
    assert job["status"] == "failed" and "never uploaded" in job["error"]
    assert job["node"] is None and job["gpu_seconds"] == 0


def test_expired_uploads_are_refused_and_swept(make_stack: Callable[..., Stack], inputs: FileServer) -> None:
    stack = make_stack("redis", UPLOAD_TTL_S="1", SWEEP_EVERY_S="0.5")
    stack.start_api()
    made = upload(stack, inputs.root / "reference.wav", "audio/wav")
    assert objects(stack, f"uploads/{stack.key_record.id}/{made['id']}/")
    time.sleep(1.5)
    refused = stack.submit("whisper", {"audio_url": made["url"]})
    assert refused.status_code == 400 and "expired" in refused.json()["error"]["fields"][0]["reason"]
    stack.start_worker()  # its sweeper deletes the expired upload from the bucket
    deadline = time.monotonic() + 15
    while objects(stack, f"uploads/{stack.key_record.id}/{made['id']}/") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert objects(stack, f"uploads/{stack.key_record.id}/{made['id']}/") == []


def test_a_data_uri_is_stored_as_an_upload_and_never_shown(real: Stack, inputs: FileServer) -> None:
    image = data_uri(inputs.root / "red.png", "image/png")
    reply = real.submit("analyze", {"image_url": image, "metadata": {"order": 42, "note": "<script>x</script>"}},
                        Prefer="wait=60")
    job = reply.json()
    assert reply.status_code == 200 and job["status"] == "success" and "red" in job["text"].lower(), job
    assert job["input"]["image_url"].startswith("upload://up_")
    assert job["metadata"] == {"order": 42, "note": "<script>x</script>"}
    listed = real.http.get(f"{real.url}/jobs").text
    events = real.http.get(f"{real.url}/jobs/{job['id']}/events").text
    logs = (real.api.log() if real.api else "") + "".join(w.log() for w in real.workers)
    for text in (json.dumps(job), listed, events, logs):
        assert "base64" not in text and image[30:80] not in text
    bad = real.submit("analyze", {"image_url": "data:image/png;base64,@@@"})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]["fields"][0]["reason"]
    audio_as_image = real.submit("analyze", {"image_url": data_uri(inputs.root / "reference.wav", "audio/wav")})
    assert audio_as_image.status_code == 400
    # A body with a data URI may be up to 8 MiB; without one, the 64 KiB limit holds.
    assert real.submit("csm", {"text": "x" * 70000}).status_code == 413


def test_bad_inputs_never_lease_or_launch_a_node(make_stack: Callable[..., Stack], devnode: servers.Server,
                                                 inputs: FileServer) -> None:
    stack = make_stack("redis", **servers.comput3_env(devnode, DEVNODE_KEY))
    stack.start_api()
    stack.start_worker()
    stats = f"{devnode.url}/api/v0/_devnode/stats"
    before = requests.get(stats, headers={"X-C3-API-KEY": DEVNODE_KEY}, timeout=5).json()["launches"]
    for body in ({"audio_url": inputs.url("notes.txt")}, {"audio_url": inputs.url("missing.mp3")}):
        job = stack.submit("whisper", body, Prefer="wait=30").json()
        assert job["status"] == "failed" and job["error"].startswith("audio_url: "), job
        assert job["node"] is None and job["gpu_seconds"] == 0
        kinds = [e["type"] for e in stack.http.get(f"{stack.url}/jobs/{job['id']}/events").json()["events"]]
        assert "node_launch" not in kinds and "node_acquired" not in kinds
    image = stack.submit("analyze", {"image_url": inputs.url("notes.txt")}, Prefer="wait=30").json()
    assert image["status"] == "failed" and image["error"].startswith("image_url: ")
    after = requests.get(stats, headers={"X-C3-API-KEY": DEVNODE_KEY}, timeout=5).json()["launches"]
    assert after == before
    pool = redis.Redis.from_url(stack.env["REDIS_URL"]).smembers("pool:nodes")
    assert not pool  # nothing leased, nothing launched


def test_result_links_last_seven_days_whatever_signs_the_bucket(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ALLOW_PRIVATE_URLS="true")
    stack.start_api()
    stack.start_worker()
    with Receiver() as receiver:
        job_id = stack.submit("csm", {"text": "Hi.", "notify_url": receiver.url}).json()["id"]
        hook = receiver.wait_for(1)[0]
    body = Webhook(stack.key_record.webhook_secret).verify(hook.body, hook.headers)
    link = body["result_url"]
    assert link.startswith(f"{stack.env['PUBLIC_API_URL']}/files/")
    assert requests.get(link, timeout=5).status_code == 200  # the redirect is followed to the file
    result = stack.http.get(f"{stack.url}/result/{job_id}").json()
    assert result["result_link"].startswith(f"{stack.env['PUBLIC_API_URL']}/files/")
    links = FileLinks(redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True), secret=None,
                      base_url=stack.env["PUBLIC_API_URL"], ttl_s=7 * 86400)
    key = f"results/{job_id}/echo.wav"
    now = time.time()
    two_hours_old = requests.get(f"{stack.url}/files/{links.token(key, now=now - 7200)}", allow_redirects=False,
                                 timeout=5)
    assert two_hours_old.status_code == 302  # a link from a webhook two hours ago
    presigned = two_hours_old.headers["Location"]
    assert "X-Amz-Expires=900" in presigned and requests.get(presigned, timeout=5).status_code == 200
    eight_days_old = requests.get(f"{stack.url}/files/{links.token(key, now=now - 8 * 86400)}", timeout=5)
    assert eight_days_old.status_code == 410 and eight_days_old.json()["error"]["code"] == "link_expired"
    forged = link.rsplit("/", 1)[1][:-4] + "AAAA"
    assert requests.get(f"{stack.url}/files/{forged}", timeout=5).status_code == 404


def test_delete_and_retry(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ECHO_DELAY_S="3", ALLOW_PRIVATE_URLS="true")
    stack.start_api()
    stack.start_worker()
    with Receiver() as receiver:
        running = stack.submit("csm", {"text": "Hi.", "notify_url": receiver.url},
                               **{"Idempotency-Key": "delete-me"}).json()["id"]
        stack.wait_status(running, {"running"})
        assert stack.http.delete(f"{stack.url}/jobs/{running}").status_code == 204
        for path in (f"/jobs/{running}", f"/result/{running}", f"/jobs/{running}/events"):
            assert stack.http.get(f"{stack.url}{path}").status_code == 404
        time.sleep(4)  # the worker notices, drops the run; nothing stored, nothing sent
        assert receiver.requests == [] and objects(stack, f"results/{running}/") == []
    again = stack.submit("csm", {"text": "Hi.", "notify_url": receiver.url}, **{"Idempotency-Key": "delete-me"})
    assert again.status_code == 202 and again.json()["id"] != running  # its idempotency key went too
    stack.http.post(f"{stack.url}/jobs/{again.json()['id']}/cancel")
    stack.wait_status(again.json()["id"], {"cancelled"})
    retried = stack.http.post(f"{stack.url}/jobs/{again.json()['id']}/retry", headers={"Idempotency-Key": "r-1"})
    assert retried.status_code == 202 and retried.json()["retry_of"] == again.json()["id"]
    # the same retry sent again (a dropped answer, a double click) is the same job
    replayed = stack.http.post(f"{stack.url}/jobs/{again.json()['id']}/retry", headers={"Idempotency-Key": "r-1"})
    assert replayed.status_code == 200 and replayed.json()["id"] == retried.json()["id"]
    assert replayed.headers["Idempotent-Replayed"] == "true"
    other = stack.http.post(f"{stack.url}/jobs/{retried.json()['id']}/retry", headers={"Idempotency-Key": "r-1"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["error"]["message"]  # another request
    view = stack.wait_status(retried.json()["id"], {"success"}, timeout_s=20)
    assert view["input"]["text"] == "Hi." and view["retry_of"] == again.json()["id"]
    assert stack.http.post(f"{stack.url}/jobs/{view['id']}/retry").status_code == 409  # it succeeded


def test_job_views_filters_and_metadata(api_module: Stack) -> None:
    before = time.time()
    first = api_module.submit("whisper", {"audio_url": FAKE_AUDIO, "metadata": {"n": 1}}).json()
    time.sleep(1.1)
    cut = time.time() - 0.5
    middle = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut)) + f".{int(cut * 1000) % 1000:03d}Z"
    second = api_module.submit("whisper", {"audio_url": "https://user:secret@media.example.com/b.mp3"}).json()
    view = api_module.status(second["id"])
    assert view["input"] == {"audio_url": "https://***@media.example.com/b.mp3", "model": "medium",
                             "task": "transcribe", "language": "", "complete_in": 3600, "max_time": 1200}
    assert api_module.status(first["id"])["metadata"] == {"n": 1}
    newer = api_module.http.get(f"{api_module.url}/jobs", params={"created_after": middle}).json()["jobs"]
    assert [j["id"] for j in newer] == [second["id"]]
    older = api_module.http.get(f"{api_module.url}/jobs", params={
        "created_before": middle, "created_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before - 1))}
    ).json()["jobs"]
    assert [j["id"] for j in older] == [first["id"]]
    bad = api_module.http.get(f"{api_module.url}/jobs", params={"created_after": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["fields"][0]["field"] == "created_after"
    too_big = api_module.submit("whisper", {"audio_url": FAKE_AUDIO, "metadata": {"x": "y" * 5000}})
    assert too_big.status_code == 400 and too_big.json()["error"]["fields"][0]["field"] == "metadata"


def test_a_voice_of_the_library_is_cloned_by_id(real: Stack, inputs: FileServer, devnode: servers.Server) -> None:
    clip = data_uri(inputs.root / "reference.wav", "audio/wav")
    created = real.http.post(f"{real.url}/voices", json={"name": "narrator", "audio_url": clip,
                                                         "audio_text": "A reference tone."})
    assert created.status_code == 201, created.text
    voice = created.json()
    assert voice["voice_id"].startswith("voice_") and voice["audio_text"] == "A reference tone."
    assert [v["voice_id"] for v in real.http.get(f"{real.url}/voices").json()["voices"]] == [voice["voice_id"]]
    job = real.submit("csm", {"text": "Speak like the clip.", "voice_id": voice["voice_id"]}, Prefer="wait=60").json()
    assert job["status"] == "success" and job["input"]["voice"] == "clone", job
    calls = requests.get(f"{devnode.url}/_devnode/calls", headers={"X-C3-API-KEY": DEVNODE_KEY}, timeout=5).json()
    sent = [c for c in calls if c["service"] == "csm"][-1]
    assert sent["speaker_voice"] == "upload_voice" and sent["speaker_text"] == "A reference tone."
    assert sent["speaker_audio"]["channels"] == 1  # the stereo clip, made mono
    portrait = real.submit("portrait", {"image_url": inputs.url("face.jpg"), "text": "Hello.",
                                        "voice_id": voice["voice_id"]}, Prefer="wait=90").json()
    assert portrait["status"] == "success", portrait
    both = real.submit("csm", {"text": "x", "voice_id": voice["voice_id"], "audio_url": FAKE_AUDIO,
                               "audio_text": "y"})
    assert both.status_code == 400 and both.json()["error"]["fields"][0]["field"] == "voice_id"
    other, _ = real.new_key("someone else")
    foreign = requests.post(f"{real.url}/csm", json={"text": "x", "voice_id": voice["voice_id"]},
                            headers={"Authorization": f"Bearer {other}"}, timeout=5)
    assert foreign.status_code == 400 and foreign.json()["error"]["fields"][0]["field"] == "voice_id"
    assert real.http.delete(f"{real.url}/voices/{voice['voice_id']}").status_code == 204
    assert real.http.get(f"{real.url}/voices/{voice['voice_id']}").status_code == 404
    assert objects(real, f"voices/{real.key_record.id}/") == []
