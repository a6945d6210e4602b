"""Wait mode, the job timeline, progress, and a server that slow clients cannot block."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from chalicelib.files.storage import ObjectStorage
from chalicelib.queues.base import JobQueue
from chalicelib.store.jobs import JobStore
from devtools import servers
from tests.helpers import DEVNODE_KEY, Documented, Stack
from tests.media_fixtures import FileServer
from tests.test_worker import Flaky, drive, make_runner, submit_direct

AUDIO = "https://media.example.com/a.mp3"


def echo_stack(make_stack: Callable[..., Stack], backend: str = "redis", *, worker: bool = True, **env: str) -> Stack:
    stack = make_stack(backend, **env)
    stack.start_api()
    if worker:
        stack.start_worker()
    return stack


def events_of(stack: Stack, job_id: str, **params: Any) -> dict[str, Any]:
    reply = stack.http.get(f"{stack.url}/jobs/{job_id}/events", params=params, timeout=70)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


# -- wait mode ------------------------------------------------------------------------------


def test_prefer_wait_answers_when_the_job_ends(backend: str, make_stack: Callable[..., Stack]) -> None:
    stack = echo_stack(make_stack, backend, ECHO_DELAY_S="0.5")
    started = time.monotonic()
    reply = stack.submit("whisper", {"audio_url": AUDIO}, Prefer="wait=20")
    elapsed = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.headers["Preference-Applied"] == "wait=20"
    body = reply.json()
    assert body["status"] == "success" and body["progress"] == 1.0 and body["text"] == f"echo: whisper of {AUDIO}"
    assert 0.4 < elapsed < 5, elapsed  # answered when it ended, not at the end of the wait
    media = stack.submit("csm", {"text": "Hi."}, Prefer="respond-async, wait=20").json()
    assert media["status"] == "success" and requests.get(media["result_url"], timeout=5).status_code == 200


def test_a_job_not_ended_within_the_wait_is_202_then_waited_on(backend: str,
                                                               make_stack: Callable[..., Stack]) -> None:
    stack = echo_stack(make_stack, backend, ECHO_DELAY_S="3")
    started = time.monotonic()
    reply = stack.submit("whisper", {"audio_url": AUDIO}, Prefer="wait=1")
    assert reply.status_code == 202 and 0.9 < time.monotonic() - started < 2.5
    assert reply.headers["Preference-Applied"] == "wait=1" and reply.json()["status"] in ("queued", "running")
    job_id = reply.json()["id"]
    waited = stack.http.get(f"{stack.url}/jobs/{job_id}", params={"wait": "20"}, timeout=30)
    assert waited.status_code == 200 and waited.json()["status"] == "success"
    assert time.monotonic() - started < 8
    legacy = stack.http.get(f"{stack.url}/status/{job_id}", params={"wait": "5"}, timeout=30)
    assert legacy.json()["status"] == "success"


def test_a_wait_with_nothing_happening_answers_after_n_seconds(make_stack: Callable[..., Stack]) -> None:
    stack = echo_stack(make_stack, worker=False)
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    started = time.monotonic()
    view = stack.http.get(f"{stack.url}/jobs/{job_id}", params={"wait": "2"}, timeout=10)
    assert view.status_code == 200 and view.json()["status"] == "queued"
    assert 1.9 < time.monotonic() - started < 3.5
    for bad in ("61", "-1", "1.5", "x", "²"):
        reply = stack.http.get(f"{stack.url}/jobs/{job_id}", params={"wait": bad})
        assert reply.status_code == 400 and reply.json()["error"]["fields"][0]["field"] == "wait", bad
    unknown = stack.http.get(f"{stack.url}/jobs/{job_id}", params={"wiat": "5"})
    assert unknown.status_code == 400 and unknown.json()["error"]["fields"][0] == {
        "field": "wiat", "reason": "unknown query parameter"}


def test_a_job_cancelled_while_a_client_waits_answers_at_once(make_stack: Callable[..., Stack]) -> None:
    stack = echo_stack(make_stack, ECHO_DELAY_S="30")
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    stack.wait_status(job_id, {"running"})
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(
        stack.http.get(f"{stack.url}/jobs/{job_id}", params={"wait": "60"}, timeout=70).json()))
    waiter.start()
    time.sleep(0.5)
    cancelled_at = time.monotonic()
    stack.http.post(f"{stack.url}/jobs/{job_id}/cancel")
    waiter.join(20)
    assert answers and answers[0]["status"] == "cancelled"
    assert time.monotonic() - cancelled_at < 5


# -- the timeline ---------------------------------------------------------------------------


def test_the_timeline_of_a_successful_job_and_its_long_poll(make_stack: Callable[..., Stack]) -> None:
    stack = echo_stack(make_stack, ECHO_DELAY_S="2")
    job_id = stack.submit("csm", {"text": "Hi."}).json()["id"]
    first = events_of(stack, job_id)
    assert first["events"][0]["type"] == "queued" and first["events"][0]["seq"] == 1
    seen = first["events"]
    cursor = first["next"]
    while not seen or seen[-1]["type"] != "finished":  # follow it as a client would
        page = events_of(stack, job_id, after=cursor, wait=10)
        assert page["events"], "a long poll answered without new events before the job ended"
        seen += page["events"]
        cursor = page["next"]
    kinds = [e["type"] for e in seen]
    assert kinds[:2] == ["queued", "started"] and kinds[-2:] == ["output_stored", "finished"], kinds
    assert "progress" in kinds and [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[1]["attempt"] == 1 and seen[-1]["status"] == "success"
    assert all(e["at"].endswith("Z") and e["message"] for e in seen)
    progress = [e["progress"] for e in seen if e["type"] == "progress"]
    assert progress == sorted(progress) and 0 < progress[0] < 1
    # After the end, a long poll does not hang: there is nothing more to come.
    started = time.monotonic()
    assert events_of(stack, job_id, after=cursor, wait=30)["events"] == []
    assert time.monotonic() - started < 2
    other, _ = stack.new_key("someone else")
    assert requests.get(f"{stack.url}/jobs/{job_id}/events", headers={"Authorization": f"Bearer {other}"},
                        timeout=5).status_code == 404


def test_the_timeline_of_a_cancelled_job(make_stack: Callable[..., Stack]) -> None:
    stack = echo_stack(make_stack, ECHO_DELAY_S="20")
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    stack.wait_status(job_id, {"running"})
    stack.http.post(f"{stack.url}/jobs/{job_id}/cancel")
    stack.wait_status(job_id, {"cancelled"})
    events = events_of(stack, job_id)["events"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "queued" and "cancel_requested" in kinds and kinds[-1] == "finished"
    assert events[-1]["status"] == "cancelled"


def test_the_timeline_of_a_retried_job(store: JobStore, storage: ObjectStorage,
                                       make_job_queue: Callable[..., JobQueue]) -> None:
    queue = make_job_queue("redis")
    job_id = submit_direct(store, queue)
    drive(make_runner(store, queue, storage, Flaky(1)), queue, lambda: store.get(job_id).status.terminal)
    events = store.events(store.get(job_id))
    kinds = [e["type"] for e in events]
    assert kinds == ["queued", "started", "retry", "started", "finished"], kinds
    assert "node answered 502" in events[2]["reason"] and events[2]["delay_s"] > 0
    assert events[3]["attempt"] == 2 and events[4]["status"] == "success"


def test_timelines_and_progress_of_the_real_job_types(make_stack: Callable[..., Stack], devnode: servers.Server,
                                                      inputs: FileServer) -> None:
    stack = make_stack("redis", **servers.devnode_env(devnode, DEVNODE_KEY), WORKER_LEASE_S="20")
    stack.start_api()
    stack.start_worker()
    speech = " ".join(f"This is sentence number {n} of a longer monologue." for n in range(1, 9))
    bodies = {"csm": {"text": speech}, "analyze": {"image_url": inputs.url("red.png")},
              "portrait": {"image_url": inputs.url("face.jpg"), "audio_url": inputs.url("reference.wav")}}
    documented = Documented(stack)  # every answer is what the OpenAPI document says it is
    for job_type, body in bodies.items():
        reply = stack.submit(job_type, body, Prefer="wait=60")
        assert reply.status_code == 200 and reply.json()["status"] == "success", reply.text
        job_id = reply.json()["id"]
        documented.check("JobEnded", reply.json())
        documented.check("Job", stack.status(job_id))
        documented.check("Result", stack.http.get(f"{stack.url}/result/{job_id}").json())
        documented.check("Events", events_of(stack, job_id))
        events = events_of(stack, job_id)["events"]
        kinds = [e["type"] for e in events]
        assert kinds[:2] == ["queued", "started"] and "node_acquired" in kinds and kinds[-1] == "finished", kinds
        assert reply.json()["progress"] == 1.0
        if job_type != "csm":
            fetched = next(e for e in events if e["type"] == "inputs_fetched")
            assert {i["field"] for i in fetched["inputs"]} == set(body)
            assert all(i["bytes"] > 0 for i in fetched["inputs"])
        if job_type == "csm":  # progress from the CSM app, per sentence
            steps = [e["progress"] for e in events if e["type"] == "progress"]
            assert len(steps) >= 2 and all(0.2 <= p <= 0.9 for p in steps), steps
    whisper = stack.submit("whisper", {"audio_url": inputs.url("reference.wav")}, Prefer="wait=60").json()
    assert whisper["status"] == "success" and whisper["progress"] == 1.0
    documented.check("JobEnded", whisper)
    documented.check("Result", stack.http.get(f"{stack.url}/result/{whisper['id']}").json())
    failed = stack.submit("whisper", {"audio_url": inputs.url("notes.txt")}, Prefer="wait=60").json()
    documented.check("JobEnded", failed)
    documented.check("Result", stack.http.get(f"{stack.url}/result/{failed['id']}").json())
    kinds = [e["type"] for e in events_of(stack, failed["id"])["events"]]
    assert failed["status"] == "failed" and kinds == ["queued", "started", "finished"], kinds


# -- serving --------------------------------------------------------------------------------


def test_slow_clients_do_not_block_the_api(api_module: Stack) -> None:
    """A few hundred connections trickling their headers; a normal request is still answered at once."""
    host, port = "127.0.0.1", int(api_module.url.rsplit(":", 1)[1])
    slow = []
    for _ in range(300):
        sock = socket.create_connection((host, port))
        sock.sendall(b"POST /csm HTTP/1.1\r\nHost: x\r\n")  # ...and then nothing for a long while
        slow.append(sock)
    try:
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"{api_module.url}/health", timeout=5).status_code == 200
            assert time.monotonic() - started < 0.5
        assert api_module.submit("whisper", {"audio_url": AUDIO}).status_code == 202
    finally:
        for sock in slow:
            sock.close()


def test_errors_the_http_server_answers_itself_are_json(api_module: Stack) -> None:
    host, port = "127.0.0.1", int(api_module.url.rsplit(":", 1)[1])

    def raw(request: bytes) -> tuple[str, str, str]:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.decode("latin1").partition("\r\n\r\n")
        return head.split("\r\n")[0], head, body

    status, head, body = raw(b"GET /health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
    assert status.startswith("HTTP/1.1 400") and "application/json" in head
    assert requests.models.complexjson.loads(body)["error"]["code"] == "bad_request"
    status, head, body = raw(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")  # the limit is 4094
    assert status.startswith("HTTP/1.1 414") and "application/json" in head
    assert requests.models.complexjson.loads(body)["error"]["code"] == "uri_too_long"


@pytest.mark.parametrize("header", ["wait=0", "wait=abc", "handling=lenient"])
def test_preferences_the_api_does_not_apply_are_ignored(make_stack: Callable[..., Stack], header: str) -> None:
    stack = echo_stack(make_stack, worker=False)
    reply = stack.submit("whisper", {"audio_url": AUDIO}, Prefer=header)
    assert reply.status_code == 202 and "Preference-Applied" not in reply.headers
