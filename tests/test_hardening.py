"""Defects found by using the stack as a new user would and by attacking it; one regression test each.

(The pool's stop loop is in test_pool.py, make run in test_local_stack.py, webhook fairness in
test_webhooks.py.)
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chalicelib.files.storage import ObjectStorage
from chalicelib.jobs import spec as jobspec
from chalicelib.jobs.models import Job, JobStatus
from chalicelib.queues.base import JobQueue
from chalicelib.security.safehttp import UrlPolicy
from chalicelib.security.urlpolicy import UrlRefused, vetted_addresses
from chalicelib.store.jobs import JobStore
from devtools import servers
from tests.helpers import DEVNODE_KEY, Stack, make_settings
from tests.media_fixtures import FileServer
from tests.receiver import Receiver
from worker.context import JobContext
from worker.engines.base import Engine, Output, OutputFile
from worker.engines.deps import EngineDeps
from worker.gpu.nodes import Node
from worker.runner import Runner, RunnerConfig

AUDIO = "https://media.example.com/a.mp3"
IMAGE = "https://media.example.com/i.png"


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack("redis", AUTH_CACHE_S="0")
    stack.start_api()
    return stack


def fields_of(reply: requests.Response) -> dict[str, str]:
    assert reply.status_code == 400, reply.text
    return {f["field"]: f["reason"] for f in reply.json()["error"]["fields"]}


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("job_type", "body", "field"), [
    ("csm", {"text": "   "}, "text"),
    ("csm", {"text": "\n\t "}, "text"),
    ("csm", {"text": "Hi.", "audio_url": AUDIO, "audio_text": "  "}, "audio_text"),
    ("portrait", {"image_url": IMAGE, "text": " \u3000 "}, "text"),
    ("analyze", {"image_url": IMAGE, "prompt": "   "}, "prompt"),
])
def test_whitespace_only_text_is_refused_at_submit(api_module: Stack, job_type: str, body: dict[str, Any],
                                                    field: str) -> None:
    assert "whitespace" in fields_of(api_module.submit(job_type, body))[field]


@pytest.mark.parametrize("url", ["https://media.example.com/a b.mp3", "https://media.example.com/a\tb.mp3",
                                 "https://media.example.com/a\x00.mp3", "https://media.example.com/\x7f",
                                 "https://média.example.com/a.mp3", "https://media.example.com/ünï.mp3"])
def test_urls_with_spaces_control_or_non_ascii_characters_are_refused_at_submit(api_module: Stack,
                                                                                 url: str) -> None:
    reason = fields_of(api_module.submit("whisper", {"audio_url": url}))["audio_url"]
    assert "control characters" in reason or "ASCII" in reason


def test_malformed_input_is_a_json_400_never_a_500(api_module: Stack) -> None:
    deep = "[" * 3000 + "]" * 3000
    reply = api_module.http.post(f"{api_module.url}/csm", data=f'{{"text": {deep}}}',
                                 headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "bad_request", reply.text
    for limit in ("²", "٣", "3.0", "-1", "0x10", " 3"):
        listed = api_module.http.get(f"{api_module.url}/jobs", params={"limit": limit})
        assert listed.status_code == 400 and "limit" in fields_of(listed), (limit, listed.text)
    forged = api_module.http.get(f"{api_module.url}/jobs", params={"cursor": "c٣"})
    assert forged.status_code == 400


# -- limits on what a client may cost -------------------------------------------------------


def test_invalid_and_unauthenticated_requests_are_throttled(stack: Stack) -> None:
    key, _ = stack.new_key("broken client", rate_per_s=2.0, burst=4)
    headers = {"Authorization": f"Bearer {key}"}
    codes = [requests.post(f"{stack.url}/whisper", json={"audio_url": "nope"}, headers=headers).status_code
             for _ in range(40)]
    assert codes[:4] == [400] * 4 and codes.count(429) >= 30, codes
    limited = requests.post(f"{stack.url}/whisper", json={"audio_url": "nope"}, headers=headers)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    anonymous = [requests.get(f"{stack.url}/jobs", headers={"Authorization": "Bearer wrong"}).status_code
                 for _ in range(40)]
    assert anonymous[:20] == [401] * 20 and anonymous.count(429) >= 10, anonymous
    assert requests.get(f"{stack.url}/health").status_code == 200  # routes without a key are not charged


def test_the_queued_jobs_cap_says_when_to_retry(stack: Stack) -> None:
    key, _ = stack.new_key("capped", max_queued=1)
    headers = {"Authorization": f"Bearer {key}"}
    assert requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers).status_code == 202
    full = requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers)
    assert full.status_code == 429 and full.json()["error"]["code"] == "too_many_queued_jobs"
    assert int(full.headers["Retry-After"]) > 0


# -- security -------------------------------------------------------------------------------

EMBEDDED = ["http://[2002:a9fe:a9fe::]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b:1::7f00:1]/",
            "http://[2001:0:a9fe:a9fe::1]/", "http://[::a9fe:a9fe]/", "http://[::ffff:10.0.0.1]/"]


@pytest.mark.parametrize("url", EMBEDDED)
def test_ipv6_forms_that_embed_a_private_ipv4_address_are_refused_everywhere(api_module: Stack, url: str) -> None:
    bodies = {"audio_url": ("whisper", {"audio_url": url}), "image_url": ("analyze", {"image_url": url}),
              "reference_audio_url": ("csm", {"text": "Hi.", "reference_audio_url": url, "reference_text": "x"}),
              "notify_url": ("whisper", {"audio_url": AUDIO, "notify_url": url})}
    for field, (job_type, body) in bodies.items():
        assert fields_of(api_module.submit(job_type, body))[field].startswith("refused: "), field
    with pytest.raises(UrlRefused, match="embeds"):  # the webhook sender's check
        vetted_addresses(url, allow_private=False)
    with pytest.raises(UrlRefused, match="embeds"):  # the input fetcher's check
        UrlPolicy().vet(url)
    assert vetted_addresses("http://[2002:0808:0808::1]/", allow_private=False).addresses  # 8.8.8.8 inside: fine


def test_a_urls_userinfo_never_reaches_an_error_or_a_log(make_stack: Callable[..., Stack],
                                                          devnode: servers.Server) -> None:
    stack = make_stack("redis", **servers.devnode_env(devnode, DEVNODE_KEY))
    stack.start_api()
    worker = stack.start_worker()
    url = f"http://alice:hunter2-secret@127.0.0.1:{servers.free_port()}/talk.mp3"
    job_id = stack.submit("whisper", {"audio_url": url}).json()["id"]
    view = stack.wait_status(job_id, {"failed"}, timeout_s=30)
    assert "***@127.0.0.1" in view["error"] and "hunter2" not in json.dumps(view)
    assert "hunter2" not in worker.log() and "hunter2" not in (stack.api.log() if stack.api else "")


# -- the worker: images, outputs, progress --------------------------------------------------


def bomb(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG: small on disk (it compresses to almost nothing), huge when decoded."""
    Image.new("1", (width, height)).save(path, "PNG")
    return path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_images_past_the_pixel_cap_fail_from_their_header_without_decoding(make_stack: Callable[..., Stack],
                                                                          devnode: servers.Server,
                                                                          tmp_path: Path) -> None:
    files = FileServer(tmp_path)
    try:
        bomb(tmp_path / "big.png", 12000, 12000)  # 144 Mpx in ~0.4 MB
        bomb(tmp_path / "huge.png", 20000, 20000)  # 400 Mpx: past Pillow's own bomb guard too
        bomb(tmp_path / "over.png", 8000, 7000)  # 56 Mpx: past ours only (the default 50 Mpx)
        stack = make_stack("redis", **servers.devnode_env(devnode, DEVNODE_KEY))
        stack.start_api()
        worker = stack.start_worker()
        warm = stack.submit("analyze", {"image_url": files.url("big.png").replace("big", "missing")}).json()["id"]
        stack.wait_status(warm, {"failed"}, timeout_s=30)  # the worker has loaded everything it loads
        before = peak_rss_mb(worker.proc.pid)
        for name in ("big.png", "huge.png", "over.png"):
            job_id = stack.submit("analyze", {"image_url": files.url(name)}).json()["id"]
            view = stack.wait_status(job_id, {"failed", "success"}, timeout_s=30)
            assert view["status"] == "failed" and view["error"].startswith("image_url: "), view
            assert "Mpx" in view["error"] or "too many pixels" in view["error"], view
            assert "internal error" not in view["error"] and view["node"] is None
        assert peak_rss_mb(worker.proc.pid) - before < 50  # decoding 144 Mpx would take hundreds of MB
    finally:
        files.close()


class _Stub(Engine):
    """A csm engine whose node returns ``produce(ctx)``; it reports progress 0.39 first."""

    job_type = "csm"
    fetches_inputs = False

    def __init__(self, produce: Callable[[JobContext], Output]) -> None:
        super().__init__(EngineDeps.from_settings(make_settings("redis://x", "http://x")),
                         jobspec.builtin().get("csm"))
        self.produce = produce
        self.calls = 0

    @property
    def needs_node(self) -> bool:
        return False

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        self.calls += 1
        ctx.report(0.39)
        return self.produce(ctx)


def run_one(store: JobStore, queue: JobQueue, storage: ObjectStorage, engine: Engine) -> Job:
    job_id = str(uuid.uuid4())
    store.create(job_id=job_id, job_type="csm", owner="t", max_attempts=3, params={"text": "Hi.", "voice": "random"})
    queue.enqueue(job_id)
    runner = Runner(store=store, queue=queue, engines={"csm": engine}, storage_factory=lambda: storage,
                    config=RunnerConfig(lease_s=5, heartbeat_s=0.1, shutdown_grace_s=5, retry_base_delay_s=0.05))
    runner.heartbeat.start()
    deadline = time.monotonic() + 20
    while not store.get(job_id).status.terminal and time.monotonic() < deadline:
        lease = queue.receive(0.5)
        if lease:
            runner.handle(lease)
    runner.heartbeat.close()
    return store.get(job_id)


def test_media_that_does_not_decode_fails_as_the_nodes_fault(store: JobStore, storage: ObjectStorage,
                                                             make_job_queue: Callable[..., JobQueue]) -> None:
    def broken(ctx: JobContext) -> Output:
        path = ctx.workdir / "speech.mp3"
        path.write_bytes(b"\xff\xfb\x90\x64" + b"\x00" * 222)  # 226 bytes: an MP3 frame header and nothing
        return Output(files=[OutputFile(path, "audio/mpeg")])

    engine = _Stub(broken)
    job = run_one(store, make_job_queue("redis"), storage, engine)
    assert job.status is JobStatus.FAILED and engine.calls == 3, job  # retried: the node's fault
    assert "audio that does not decode (speech.mp3, 226 bytes)" in (job.error or "")


def test_a_finished_jobs_progress_is_one(store: JobStore, storage: ObjectStorage,
                                         make_job_queue: Callable[..., JobQueue]) -> None:
    def good(ctx: JobContext) -> Output:
        path = ctx.workdir / "speech.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(b"\x01\x00" * 8000)
        time.sleep(0.3)  # the heartbeat publishes the 0.39 meanwhile
        return Output(files=[OutputFile(path, "audio/wav")])

    job = run_one(store, make_job_queue("redis"), storage, _Stub(good))
    assert job.status is JobStatus.SUCCESS and job.progress == 1.0
    assert job.result and job.result["duration_s"] == 0.5


# -- webhook secrets ------------------------------------------------------------------------


def test_a_key_rotates_its_webhook_secret_and_the_old_one_overlaps(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ALLOW_PRIVATE_URLS="true", WEBHOOK_SECRET_OVERLAP_S="3600")
    stack.start_api()
    stack.start_worker()
    with Receiver() as receiver:
        def webhook() -> Any:
            stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url})
            return receiver.wait_for(len(receiver.requests) + 1)[-1]

        old = stack.http.get(f"{stack.url}/me/webhook-secret").json()["webhook_secret"]
        assert old == stack.key_record.webhook_secret
        first = webhook()
        assert Webhook(old).verify(first.body, first.headers)
        rotated = stack.http.post(f"{stack.url}/me/webhook-secret").json()
        new = rotated["webhook_secret"]
        assert new != old and rotated["previous_webhook_secret"] == old and rotated["previous_valid_until"]
        during = webhook()
        assert len(during.headers["webhook-signature"].split()) == 2
        assert Webhook(new).verify(during.body, during.headers) and Webhook(old).verify(during.body, during.headers)
        # The operator rotates again with no overlap: only the newest secret signs.
        done = subprocess.run([str(servers.ROOT / "c3render"), "keys", "rotate-secret", stack.key_record.id,
                               "--overlap", "0"], env={**stack.env}, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        newest = json.loads(done.stdout)["webhook_secret"]
        after = webhook()
        assert Webhook(newest).verify(after.body, after.headers)
        for stale in (old, new):
            with pytest.raises(WebhookVerificationError):
                Webhook(stale).verify(after.body, after.headers)


def test_callers_without_a_key_record_are_told_which_secret_signs(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ADMIN_API_KEY="static-admin-key-0123456789")
    stack.start_api()
    admin = {"Authorization": "Bearer static-admin-key-0123456789"}
    reply = requests.get(f"{stack.url}/me/webhook-secret", headers=admin)
    assert reply.status_code == 409 and "WEBHOOK_SECRET" in reply.json()["error"]["message"]
    assert requests.get(f"{stack.url}/me", headers=admin).json() == {"id": "admin", "admin": True}
