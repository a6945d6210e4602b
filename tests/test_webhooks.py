"""Webhooks against a real HTTP receiver: signatures, retries, schedule, SSRF, crash safety."""
from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chalicelib.jobs.models import JobStatus
from chalicelib.security.urlpolicy import UrlRefused, vetted_addresses
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Outbox
from tests.helpers import Stack
from tests.receiver import Answer, BlackHole, Receiver, receiving
from worker.notifier import Notifier, NotifierConfig

SECRET = "whsec_" + base64.b64encode(b"test-secret-for-webhooks-0123456").decode()
AUDIO = "https://media.example.com/a.mp3"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiving()


def hook_stack(make_stack: Callable[..., Stack], **env: str) -> Stack:
    stack = make_stack("redis", **{"WEBHOOK_SECRET": SECRET, "ALLOW_PRIVATE_URLS": "true",
                                   "WEBHOOK_RETRY_DELAY_S": "0.3", **env})
    stack.start_api()
    stack.start_worker()
    return stack


def webhook_log(stack: Stack, job_id: str) -> dict[str, object]:
    reply = stack.http.get(f"{stack.url}/jobs/{job_id}/webhooks")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def wait_webhook_state(stack: Stack, job_id: str, state: str, timeout_s: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = stack.status(job_id)
        if view.get("webhook") == state:
            return view
        time.sleep(0.05)
    raise AssertionError(f"webhook state stayed {stack.status(job_id).get('webhook')}, wanted {state}")


def test_signed_with_standard_webhooks(make_stack: Callable[..., Stack], receiver: Receiver) -> None:
    stack = hook_stack(make_stack)
    text_job = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
    media_job = stack.submit("csm", {"text": "Hi.", "notify_url": receiver.url}).json()["id"]
    got = receiver.wait_for(2)
    by_id = {json.loads(r.body)["id"]: r for r in got}
    text = by_id[text_job]
    key_secret = stack.key_record.webhook_secret  # each API key signs its own jobs' webhooks
    verified = Webhook(key_secret).verify(text.body, text.headers)
    assert verified == {"id": text_job, "status": "success", "text": f"echo: whisper of {AUDIO}"}
    assert text.headers["webhook-id"] == f"{text_job}-completed"
    assert text.headers["user-agent"].startswith("c3-render-webhooks/")
    assert abs(int(text.headers["webhook-timestamp"]) - time.time()) < 30
    for wrong in (SECRET, "whsec_" + base64.b64encode(b"another-secret-entirely-99999999").decode()):
        with pytest.raises(WebhookVerificationError):
            Webhook(wrong).verify(text.body, text.headers)
    media = Webhook(key_secret).verify(by_id[media_job].body, by_id[media_job].headers)
    assert set(media) == {"id", "status", "result_url"} and media["status"] == "success"
    assert requests.get(media["result_url"], timeout=5).status_code == 200
    assert wait_webhook_state(stack, text_job, "delivered")["webhook"] == "delivered"


def test_failing_twice_then_ok_gives_three_attempts_with_one_id(make_stack: Callable[..., Stack],
                                                                receiver: Receiver) -> None:
    receiver.script = [Answer(500), Answer(503), Answer(200)]
    stack = hook_stack(make_stack)
    job_id = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
    got = receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in got} == {f"{job_id}-completed"}
    assert len({r.body for r in got}) == 1
    wait_webhook_state(stack, job_id, "delivered")
    time.sleep(0.5)
    assert len(receiver.requests) == 3
    log = webhook_log(stack, job_id)
    attempts = log["deliveries"][0]["attempts"]  # type: ignore[index]
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert all(a["duration_ms"] >= 0 and a["at"] for a in attempts)


def test_dead_receiver_gets_one_plus_five_attempts_on_schedule(make_stack: Callable[..., Stack]) -> None:
    with Receiver(Answer(500)) as receiver:
        stack = hook_stack(make_stack)
        job_id = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
        got = receiver.wait_for(6)
        wait_webhook_state(stack, job_id, "failed")
        time.sleep(1.0)
        assert len(receiver.requests) == 6
        gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
        assert all(0.28 <= gap < 1.0 for gap in gaps), gaps
        assert stack.status(job_id)["status"] == "success"  # the job itself is unaffected


def test_retry_after_gone_and_redirects(make_stack: Callable[..., Stack], receiver: Receiver) -> None:
    stack = hook_stack(make_stack)
    receiver.script = [Answer(429, {"Retry-After": "1"}), Answer(200)]
    slow = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.95
    wait_webhook_state(stack, slow, "delivered")
    receiver.requests.clear()
    receiver.script = [Answer(410)]
    gone = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
    wait_webhook_state(stack, gone, "gone")
    time.sleep(0.8)
    assert len(receiver.requests) == 1
    receiver.requests.clear()
    receiver.script = [Answer(302, {"Location": receiver.url + "/elsewhere"}), Answer(200)]
    moved = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
    wait_webhook_state(stack, moved, "delivered")
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]  # the redirect was not followed
    attempts = webhook_log(stack, moved)["deliveries"][0]["attempts"]  # type: ignore[index]
    assert [a["status_code"] for a in attempts] == [302, 200]


def test_started_event_and_redeliver(make_stack: Callable[..., Stack], receiver: Receiver) -> None:
    stack = hook_stack(make_stack)
    job_id = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url,
                                      "notify_events": ["started", "completed"]}).json()["id"]
    got = receiver.wait_for(2)
    bodies = sorted((json.loads(r.body)["status"], r.headers["webhook-id"]) for r in got)
    assert bodies == [("running", f"{job_id}-started"), ("success", f"{job_id}-completed")]
    wait_webhook_state(stack, job_id, "delivered")
    reply = stack.http.post(f"{stack.url}/jobs/{job_id}/webhooks/redeliver")
    assert reply.status_code == 202
    third = receiver.wait_for(3)[2]
    assert third.headers["webhook-id"] == f"{job_id}-completed"
    assert json.loads(third.body)["status"] == "success"
    queued = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    assert stack.http.post(f"{stack.url}/jobs/{queued}/webhooks/redeliver").status_code == 409


def test_a_hanging_receiver_does_not_slow_jobs(make_stack: Callable[..., Stack], receiver: Receiver) -> None:
    stack = hook_stack(make_stack, ECHO_DELAY_S="0.1")

    def run_batch(url: str, count: int = 25) -> float:
        started = time.monotonic()
        ids = [stack.submit("whisper", {"audio_url": AUDIO, "notify_url": url}).json()["id"] for _ in range(count)]
        for job_id in ids:
            stack.wait_status(job_id, {"success"}, timeout_s=60)
        return time.monotonic() - started

    healthy = run_batch(receiver.url)
    with Receiver(Answer(200, hang_s=30)) as hanging:
        slow = run_batch(hanging.url)
        assert len(hanging.requests) >= 1  # it really was being called
    ratio = healthy / slow
    assert ratio >= 0.9, (healthy, slow)


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "http://10.0.0.1/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://localhost:{port}/hook",
                                 "http://[::1]:{port}/hook", "http://0.0.0.0:{port}/", "http://192.168.1.10/"])
def test_private_notify_urls_are_refused(api_module: Stack, receiver: Receiver, url: str) -> None:
    reply = api_module.submit("whisper", {"audio_url": AUDIO, "notify_url": url.format(port=receiver.port)})
    assert reply.status_code == 400, reply.text
    fields = {f["field"]: f["reason"] for f in reply.json()["error"]["fields"]}
    assert fields["notify_url"].startswith("refused: ")
    time.sleep(0.2)
    assert receiver.requests == []


def notifier_config(*, allow_private: bool) -> NotifierConfig:
    return dataclasses.replace(NotifierConfig.from_settings(Settings.from_env({"ENV_FILE": "/nonexistent"})),
                               secrets=(SECRET,), allow_private=allow_private)


def test_delivery_rechecks_the_url(store: JobStore, receiver: Receiver) -> None:
    """A job recorded with a URL that is private at delivery time is never called."""
    job_id = str(uuid.uuid4())
    store.create(job_id=job_id, job_type="whisper", owner="t", max_attempts=3,
                 params={"audio_url": AUDIO, "notify_url": receiver.url, "complete_in": 3600, "max_time": 60})
    store.start(job_id, run_token="t", lease_s=30, worker_id="w")
    store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "x"})
    outbox = Outbox(store.redis, record_ttl_s=600)
    notifier = Notifier(outbox=outbox, store=store, storage=None,
                        config=notifier_config(allow_private=False))
    assert outbox.claim(limit=10, claim_s=5) == [f"{job_id}-completed"]
    assert notifier.deliver(f"{job_id}-completed") == "blocked"
    assert receiver.requests == []
    assert store.get(job_id).webhook == "blocked"
    assert "refused: 127.0.0.1 is a loopback address" in json.dumps(outbox.log(job_id))


def test_jobs_without_a_key_are_signed_with_the_global_secret(store: JobStore, receiver: Receiver) -> None:
    job_id = str(uuid.uuid4())
    store.create(job_id=job_id, job_type="analyze", owner="anonymous", max_attempts=3,
                 params={"image_url": "https://x.example/i.png", "notify_url": receiver.url, "complete_in": 3600,
                         "max_time": 60})
    store.start(job_id, run_token="t", lease_s=30, worker_id="w")
    store.finish(job_id, run_token="t", status=JobStatus.FAILED, error="could not decode the image")
    outbox = Outbox(store.redis, record_ttl_s=600)
    notifier = Notifier(outbox=outbox, store=store, storage=None,
                        config=notifier_config(allow_private=True))
    assert notifier.deliver(f"{job_id}-completed") == "delivered"
    got = receiver.wait_for(1)[0]
    assert Webhook(SECRET).verify(got.body, got.headers) == {
        "id": job_id, "status": "failed", "error": "could not decode the image"}


def test_a_notifier_killed_mid_delivery_redelivers_with_the_same_id(make_stack: Callable[..., Stack],
                                                                    receiver: Receiver) -> None:
    receiver.script = [Answer(200, hang_s=20)]
    stack = make_stack("redis", WEBHOOK_SECRET=SECRET, ALLOW_PRIVATE_URLS="true", WEBHOOK_TIMEOUT_S="1.5")
    stack.start_api()
    first = stack.start_worker()
    job_id = stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url}).json()["id"]
    receiver.wait_for(1)
    first.kill()  # SIGKILL while the receiver holds the request
    stack.start_worker()
    got = receiver.wait_for(2, timeout_s=20)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == f"{job_id}-completed"
    wait_webhook_state(stack, job_id, "delivered")


def test_url_policy_unit() -> None:
    for url in ("http://127.0.0.1/", "http://10.1.2.3/", "http://172.16.0.1/", "http://169.254.169.254/",
                "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/", "http://224.0.0.1/",
                "http://localhost/", "http://metadata.google.internal/", "ftp://8.8.8.8/", "http://100.64.0.1/"):
        with pytest.raises(UrlRefused):
            vetted_addresses(url, allow_private=False, resolve=False)
    public = vetted_addresses("https://8.8.8.8:8443/hook?x=1", allow_private=False)
    assert (public.host, public.port, public.path, public.addresses) == ("8.8.8.8", 8443, "/hook?x=1", ("8.8.8.8",))
    assert vetted_addresses("http://127.0.0.1:9/x", allow_private=True).addresses == ("127.0.0.1",)
    assert vetted_addresses("https://unresolvable.invalid/", allow_private=False, resolve=False).addresses == ()
    with pytest.raises(UrlRefused, match="does not resolve"):
        vetted_addresses("https://unresolvable.invalid/", allow_private=False)


def test_one_tenants_black_hole_receivers_do_not_delay_another_tenants_webhook(make_stack: Callable[..., Stack],
                                                                               receiver: Receiver) -> None:
    """40 notify_urls of one key that accept and never answer hold at most WEBHOOK_MAX_PER_HOST (4)
    of the notifier's 16 slots; another key's webhook goes out at once."""
    stack = hook_stack(make_stack, WEBHOOK_TIMEOUT_S="10")
    greedy, _ = stack.new_key("greedy")
    with BlackHole() as hole:
        for i in range(40):
            reply = requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO, "notify_url": f"{hole.url}/{i}"},
                                  headers={"Authorization": f"Bearer {greedy}"}, timeout=5)
            assert reply.status_code == 202
        deadline = time.monotonic() + 10
        while hole.accepted < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hole.accepted >= 4  # the greedy key's deliveries are hanging now
        started = time.monotonic()
        stack.submit("whisper", {"audio_url": AUDIO, "notify_url": receiver.url})
        receiver.wait_for(1, timeout_s=8)
        assert time.monotonic() - started < 2.0
        assert hole.max_open <= 4
