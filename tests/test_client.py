"""The client package (client/): the SDK and the c3render job verbs, against the real stack and devnode."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from c3render_client import (
    BadRequest,
    C3RenderError,
    Client,
    ConnectionFailed,
    JobFailed,
    NotFound,
    QueueFull,
    verify_webhook,
)
from c3render_client.api import LONG_POLL_S
from c3render_client.errors import WebhookVerificationError

from chalicelib.jobs.models import JobStatus
from chalicelib.security.webhooks import sign
from chalicelib.store import keys
from chalicelib.store.jobs import JobStore
from devtools import servers
from tests.helpers import Stack, devnode_stack
from tests.media_fixtures import portrait, red_square, stereo_tone
from worker.media import moov_first

IMAGE = "https://media.example.com/p.png"
AUDIO = "https://media.example.com/a.mp3"


@pytest.fixture(scope="module")
def stack(redis_server: servers.Server, moto: servers.Server, devnode: servers.Server,
          log_dir: Path) -> Iterator[Stack]:
    """The API and a worker with the real engines on the devnode, shared by this module's tests."""
    stack = devnode_stack(redis_server, moto, devnode, log_dir, db=7)
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-files")
    red_square(root / "red.png")
    portrait(root / "face.jpg")
    stereo_tone(root / "talk.wav")
    (root / "notes.mp3").write_text("this is not audio\n" * 20)  # called audio; it is text
    return root


def cli_env(url: str, key: str) -> dict[str, str]:
    """The CLI's environment: this API and key, no config file nor local stack."""
    return {**os.environ, "C3RENDER_URL": url, "C3RENDER_API_KEY": key, "C3RENDER_CONFIG": "/nonexistent",
            "C3RENDER_STACK": "/nonexistent"}


def cli(stack: Stack, *args: str, key: str | None = None, timeout_s: float = 120,
        **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "c3render_client.cli", *args], capture_output=True, text=True,
                          env=cli_env(stack.url, key or stack.key), timeout=timeout_s, **popen)


def test_the_sdk_runs_every_job_type_uploading_local_files(stack: Stack, files: Path, tmp_path: Path) -> None:
    client = Client(stack.url, stack.key)
    seen_states: list[str] = []
    speech = client.run("csm", text="Hello there. This is the client.",
                        progress=lambda job, event: seen_states.append(job["status"]))
    assert speech.status == "success" and speech.result_url and seen_states[-1] == "success"
    assert client.download(speech, tmp_path / "hello.mp3").read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    heard = client.run("whisper", audio_url=str(files / "talk.wav"), model="tiny")  # a local file: uploaded
    assert heard.status == "success" and isinstance(heard.text, str) and set(heard.files) >= {"srt", "vtt"}
    assert heard["input"]["audio_url"].startswith("upload://")
    srt = client.download(heard, tmp_path / "talk.srt", file="srt")
    assert srt.exists()
    video = client.run("portrait", image_url=files / "face.jpg", audio_url=files / "talk.wav")
    mp4 = client.download(video, tmp_path / "talk.mp4")
    assert mp4.stat().st_size > 1000 and moov_first(mp4)  # its index at the front: players start at once
    seen = client.run("analyze", image_url=str(files / "red.png"), prompt="What colour is it?")
    assert "red" in seen.text.lower()
    # The timeline and the listing, through the SDK.
    assert [e["type"] for e in client.follow(seen.id)][-1] == "finished"
    assert seen.id in [job.id for job in client.list(limit=10)]


def test_the_sdk_raises_typed_errors_and_retries_what_clears(stack: Stack, files: Path,
                                                             make_stack: Callable[..., Stack]) -> None:
    client = Client(stack.url, stack.key)
    with pytest.raises(BadRequest) as bad:
        client.submit("whisper", audio_url="ftp://x/a.mp3")
    assert bad.value.fields[0]["field"] == "audio_url" and bad.value.status == 400
    with pytest.raises(NotFound):
        client.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(C3RenderError, match="no such file"):  # a mistyped path: said, not sent as a URL
        client.submit("analyze", image_url=str(files / "no-such.png"))
    with pytest.raises(JobFailed) as failed:
        client.run("whisper", audio_url=str(files / "notes.mp3"))  # uploaded, then found not to be audio
    assert failed.value.job["status"] == "failed" and "audio_url" in failed.value.job["error"]
    again = client.submit("whisper", audio_url="https://media.example.com/a.mp3", idempotency_key="same-one")
    assert client.submit("whisper", audio_url="https://media.example.com/a.mp3",
                         idempotency_key="same-one").id == again.id  # a submit sent twice is one job
    # A rate limit clears: the client waits its Retry-After and goes on.
    slow_key, _ = stack.new_key("one a second", rate_per_s=1, burst=1)
    slow = Client(stack.url, slow_key)
    started = time.monotonic()
    for _ in range(3):
        slow.request("GET", "/me")
    assert time.monotonic() - started >= 1.5
    # A cap on queued jobs does not: raised at once, not slept on.
    idle = make_stack("redis")
    idle.start_api()  # no worker: jobs stay queued
    capped_key, _ = idle.new_key("capped", max_queued=1)
    capped = Client(idle.url, capped_key)
    capped.submit("whisper", audio_url="https://media.example.com/a.mp3")
    started = time.monotonic()
    with pytest.raises(QueueFull):
        capped.submit("whisper", audio_url="https://media.example.com/a.mp3")
    assert time.monotonic() - started < 2


def test_verify_webhook_accepts_the_services_signature_and_nothing_else() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"id":"j-1","status":"success","text":"hi"}'
    now = int(time.time())
    headers = {"webhook-id": "j-1-completed", "webhook-timestamp": str(now),
               "webhook-signature": sign([secret], "j-1-completed", now, body)}  # the server's own signer
    assert verify_webhook(body, headers, secret)["status"] == "success"
    for tampered in (body.replace(b"hi", b"ho"),):
        with pytest.raises(WebhookVerificationError):
            verify_webhook(tampered, headers, secret)
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify_webhook(body, {**headers, "webhook-timestamp": str(now - 3600)}, secret)
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    assert verify_webhook(body, headers, [other, secret])["id"] == "j-1"  # during a rotation
    with pytest.raises(WebhookVerificationError):  # not a TypeError from compare_digest
        verify_webhook(body, {**headers, "webhook-signature": "v1,\u00fc"}, secret)


def test_the_api_key_never_goes_to_the_storage_and_unsafe_calls_are_not_sent_twice(stack: Stack, files: Path) -> None:
    sent: list[tuple[str, str]] = []

    class Recording(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore
            sent.append((method, url))
            return super().request(method, url, *args, **kwargs)

    client = Client(stack.url, stack.key, session=Recording())
    url = client.upload(files / "talk.wav")
    # the PUT to the presigned URL did not go through the session that carries the key...
    assert [m for m, _ in sent] == ["POST"] and all(u.startswith(stack.url) for _, u in sent)
    # ...and the file is there: a job reads it
    assert client.run("whisper", audio_url=url, model="tiny").status == "success"
    # A call that changes something is not sent again once the connection was made and dropped;
    # a read is.
    with socket.create_server(("127.0.0.1", 0)) as server:
        accepted: list[int] = []

        def drop() -> None:
            server.settimeout(5)
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                accepted.append(1)
                conn.recv(65536)
                conn.close()

        threading.Thread(target=drop, daemon=True).start()
        dropping = Client(f"http://127.0.0.1:{server.getsockname()[1]}", "k", max_retries=2, max_retry_wait_s=0.1)
        with pytest.raises(ConnectionFailed):
            dropping.cancel("00000000-0000-4000-8000-000000000000")
        assert len(accepted) == 1
        with pytest.raises(ConnectionFailed):
            dropping.get("00000000-0000-4000-8000-000000000000")
        assert len(accepted) == 1 + 3


def test_options_before_the_verb_are_not_dropped(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "C3RENDER_URL": "http://127.0.0.1:9", "C3RENDER_API_KEY": "wrong",
           "C3RENDER_CONFIG": "/nonexistent", "C3RENDER_STACK": "/nonexistent"}
    listed = subprocess.run([sys.executable, "-m", "c3render_client.cli", "--url", stack.url, "--key", stack.key,
                             "--json", "jobs", "--limit", "1"], capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list), listed.stderr
    # A file's key goes only to the URL that file names.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"url": "https://api.example.com", "api_key": "c3r_from_the_config"}))
    env = {**os.environ, "C3RENDER_CONFIG": str(config), "C3RENDER_STACK": "/nonexistent"}
    for name in ("C3RENDER_URL", "C3RENDER_API_KEY"):
        env.pop(name, None)
    probe = [sys.executable, "-c",
             "import sys; from c3render_client import configured; print(configured(*sys.argv[1:]))"]
    assert "c3r_from_the_config" not in subprocess.run([*probe, stack.url], capture_output=True, text=True,
                                                        env=env, timeout=30).stdout
    assert "c3r_from_the_config" in subprocess.run([*probe, "https://api.example.com/"], capture_output=True,
                                                    text=True, env=env, timeout=30).stdout
    assert "'https://api.example.com', 'c3r_from_the_config'" in subprocess.run(
        probe, capture_output=True, text=True, env=env, timeout=30).stdout


def test_the_cli_runs_jobs_with_plain_progress_when_not_a_terminal(stack: Stack, files: Path,
                                                                   tmp_path: Path) -> None:
    out = cli(stack, "run", "csm", "--text", "Hello from the command line.", "-o", str(tmp_path / "hello.mp3"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "hello.mp3").stat().st_size > 1000
    assert "running" in out.stderr and "success" in out.stderr and "\x1b[" not in out.stderr  # plain lines
    srt = cli(stack, "run", "whisper", "--audio", str(files / "talk.wav"), "--model", "tiny", "--format", "srt",
              "-o", str(tmp_path / "talk.srt"))
    assert srt.returncode == 0, srt.stderr
    assert (tmp_path / "talk.srt").exists()
    seen = cli(stack, "run", "analyze", "--image", str(files / "red.png"), "--json")
    assert seen.returncode == 0, seen.stderr
    job = json.loads(seen.stdout)  # the JSON alone on stdout; progress went to stderr
    assert job["status"] == "success" and "red" in job["text"].lower()
    video = cli(stack, "run", "portrait", "--image", str(files / "face.jpg"), "--text", "Hello.",
                "-o", str(tmp_path / "talk.mp4"))
    assert video.returncode == 0 and moov_first(tmp_path / "talk.mp4"), video.stderr
    # The other verbs.
    listed = cli(stack, "jobs", "--json", "--limit", "5")
    assert job["id"] in [j["id"] for j in json.loads(listed.stdout)]
    assert cli(stack, "status", job["id"]).stdout.startswith(f"{job['id']} analyze success")
    timeline = cli(stack, "events", job["id"], "--follow").stdout.splitlines()
    assert "queued" in timeline[0] and "finished" in timeline[-1]
    assert cli(stack, "download", job["id"], "-o", str(tmp_path / "seen.txt")).returncode == 0
    assert "red" in (tmp_path / "seen.txt").read_text().lower()


def test_the_cli_exit_codes(stack: Stack, files: Path) -> None:
    failed = cli(stack, "run", "whisper", "--audio", str(files / "notes.mp3"))
    assert failed.returncode == 1 and "failed" in failed.stdout
    refused = cli(stack, "run", "whisper", "--audio", "https://media.example.com/a.mp3", "--task", "summarise")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "task" in refused.stderr
    missing = cli(stack, "run", "whisper", "--audio", "./no-such-file.wav")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    env = {**os.environ, "C3RENDER_URL": "http://127.0.0.1:9", "C3RENDER_API_KEY": "k"}
    unreachable = subprocess.run([sys.executable, "-m", "c3render_client.cli", "status", "x"], capture_output=True,
                                 text=True, env=env, timeout=120)
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr
    assert cli(stack, "frobnicate").returncode == 2  # usage


class Running:
    """The CLI as a process, stderr read line by line as it comes: a test waits for the line that says
    the CLI is where the test wants it (``expect``), never for a length of time."""

    def __init__(self, url: str, key: str, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "c3render_client.cli", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=cli_env(url, key))
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put("")  # the end

    def expect(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        """The first line from here on that matches."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s:\n{''.join(self.seen)}") from None
            self.seen.append(line)
            if not line:
                raise AssertionError(f"the CLI ended without {pattern!r}:\n{''.join(self.seen)}")
            if found := re.search(pattern, line):
                return found

    def answer(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout_s: float = 30) -> tuple[int, str, str]:
        """(exit code, stdout, all of stderr) once it has exited."""
        code = self.proc.wait(timeout_s)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        while (line := self.lines.get(timeout=10)) != "":
            self.seen.append(line)
        return code, out, "".join(self.seen)


def idle_stack(make_stack: Callable[..., Stack]) -> tuple[Stack, JobStore]:
    """An API with no worker, and its job store: a test that plays the worker (JobStore.start/finish)
    sets each job's state exactly when it wants."""
    stack = make_stack("redis")
    stack.start_api()
    return stack, JobStore.from_url(stack.env["REDIS_URL"], result_ttl_s=3600)


def submitted(stack: Stack, job_type: str = "analyze") -> str:
    body = {"analyze": {"image_url": IMAGE}, "whisper": {"audio_url": AUDIO}, "csm": {"text": "Hello."},
            "portrait": {"image_url": IMAGE, "audio_url": AUDIO}}[job_type]
    reply = stack.submit(job_type, body)
    assert reply.status_code in (200, 201, 202), reply.text
    return str(reply.json()["id"])


def running(store: JobStore, job_id: str) -> None:
    assert store.start(job_id, run_token="t", lease_s=60, worker_id="test").action == "run"


def test_ctrl_c_asks_and_cancels_the_job(make_stack: Callable[..., Stack]) -> None:
    """With a real worker: Ctrl-C, y, and the worker stops the job."""
    slow = make_stack("redis", ECHO_DELAY_S="30")
    slow.start_api()
    slow.start_worker()
    cli_run = Running(slow.url, slow.key, "run", "analyze", "--image", IMAGE)
    job_id = cli_run.expect(r"analyze ([0-9a-f-]{36}) running").group(1)
    cli_run.interrupt()
    cli_run.expect(rf"Cancel job {job_id}\? \[y/N\]")
    cli_run.answer("y\n")
    code, _, err = cli_run.finish()
    assert code == 130 and f"job {job_id} cancelled" in err, err
    assert slow.status(job_id)["status"] == "cancelled"


def test_ctrl_c_in_a_long_poll_asks_at_once(make_stack: Callable[..., Stack]) -> None:
    stack, _ = idle_stack(make_stack)
    cli_run = Running(stack.url, stack.key, "run", "analyze", "--image", IMAGE)
    job_id = cli_run.expect(r"analyze ([0-9a-f-]{36}) queued").group(1)
    rds = redis.Redis.from_url(stack.env["REDIS_URL"])
    deadline = time.monotonic() + 20
    while not rds.pubsub_numsub(keys.job_channel(job_id))[0][1]:  # the API holds the CLI's long poll
        assert time.monotonic() < deadline, "the CLI never long-polled"
        time.sleep(0.02)
    interrupted = time.monotonic()
    cli_run.interrupt()
    cli_run.expect(rf"Cancel job {job_id}\? \[y/N\]", timeout_s=10)
    assert time.monotonic() - interrupted < LONG_POLL_S / 5  # not at the poll's end, 25 s on
    cli_run.answer("y\n")
    code, _, err = cli_run.finish()
    assert code == 130 and f"job {job_id} cancelled" in err, err
    assert stack.status(job_id)["status"] == "cancelled"


def test_ctrl_c_then_yes_tells_a_cancel_that_came_too_late(make_stack: Callable[..., Stack]) -> None:
    stack, store = idle_stack(make_stack)
    cli_run = Running(stack.url, stack.key, "run", "analyze", "--image", IMAGE)
    job_id = cli_run.expect(r"analyze ([0-9a-f-]{36}) queued").group(1)
    running(store, job_id)
    cli_run.expect(f"{job_id} running")
    cli_run.interrupt()
    cli_run.expect(rf"Cancel job {job_id}\? \[y/N\]")
    cli_run.answer("y\n")
    cli_run.expect(f"cancelling job {job_id}: waiting for it to stop")
    assert store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "a red square"})
    code, _, err = cli_run.finish()
    assert code == 1 and "the cancel came too late, the job ended success" in err, err
    assert stack.status(job_id)["cancel_outcome"] == "too_late"


def test_ctrl_c_while_submitting_and_while_downloading(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    # An API that takes the request and never answers: the CLI is in its submit.
    with socket.create_server(("127.0.0.1", 0)) as mute:
        def hold() -> None:
            conn, _ = mute.accept()
            conn.recv(65536)
            holding.set()
            done.wait(30)
            conn.close()
        holding, done = threading.Event(), threading.Event()
        threading.Thread(target=hold, daemon=True).start()
        cli_run = Running(f"http://127.0.0.1:{mute.getsockname()[1]}", "k", "run", "analyze", "--image", IMAGE)
        assert holding.wait(20)
        cli_run.interrupt()
        code, _, err = cli_run.finish(timeout_s=5)
        done.set()
    assert code == 130 and "interrupted while submitting" in err, err
    # A result whose storage sends a little and stalls: the CLI is in its download.
    stack, store = idle_stack(make_stack)
    with socket.create_server(("127.0.0.1", 0)) as storage:
        def trickle() -> None:
            conn, _ = storage.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: 100000000\r\n\r\n"
                         + b"\xff" * 65536)
            holding.set()
            done.wait(30)
            conn.close()
        holding, done = threading.Event(), threading.Event()
        threading.Thread(target=trickle, daemon=True).start()
        job_id = submitted(stack, "csm")
        running(store, job_id)
        store.finish(job_id, run_token="t", status=JobStatus.SUCCESS,
                     result={"result_url": f"http://127.0.0.1:{storage.getsockname()[1]}/speech.mp3"})
        target = tmp_path / "speech.mp3"
        cli_run = Running(stack.url, stack.key, "download", job_id[:8], "-o", str(target))
        assert holding.wait(20)
        cli_run.interrupt()
        code, _, err = cli_run.finish(timeout_s=5)
        done.set()
    assert code == 130 and f"{target} not written" in err, err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_cancel_waits_for_the_job_and_tells_whether_it_was_in_time(make_stack: Callable[..., Stack]) -> None:
    stack, store = idle_stack(make_stack)
    queued = submitted(stack)
    assert cli(stack, "cancel", queued[:8]).returncode == 0 and stack.status(queued)["status"] == "cancelled"
    stopped, too_late, not_waited = submitted(stack), submitted(stack), submitted(stack)
    for job_id in (stopped, too_late, not_waited):
        running(store, job_id)
    # the worker stops the job: cancelled, exit 0
    cancel = Running(stack.url, stack.key, "cancel", stopped)
    cancel.expect(f"cancelling job {stopped}: waiting")
    store.finish(stopped, run_token="t", status=JobStatus.CANCELLED, error="cancelled by the client")
    code, out, _ = cancel.finish()
    assert code == 0 and out.strip() == f"job {stopped} cancelled"
    # the job ends on its own first: told, exit 1
    cancel = Running(stack.url, stack.key, "cancel", too_late)
    cancel.expect(f"cancelling job {too_late}: waiting")
    store.finish(too_late, run_token="t", status=JobStatus.SUCCESS, result={"text": "done"})
    code, out, _ = cancel.finish()
    assert code == 1 and "the cancel came too late, the job ended success" in out, out
    again = cli(stack, "cancel", too_late)
    assert again.returncode == 1 and "had already ended: success" in again.stdout
    # --no-wait: asked for, not waited on
    asked = cli(stack, "cancel", not_waited, "--no-wait")
    assert asked.returncode == 0 and "cancelling" in asked.stdout
    assert stack.status(not_waited).get("cancel_requested") is True
    # not stopped within --timeout: exit 1, the cancel stands
    late = cli(stack, "cancel", not_waited, "--timeout", "1")
    assert late.returncode == 1 and "had not ended after 1 s" in late.stderr, late.stderr
    # The SDK's own: cancel(wait=True) answers with the ended view, too_late said.
    racing = submitted(stack)
    running(store, racing)

    def worker_ends_it_anyway() -> None:  # once the cancel has been asked for
        while not stack.status(racing).get("cancel_requested"):
            time.sleep(0.02)
        store.finish(racing, run_token="t", status=JobStatus.SUCCESS, result={"text": "done"})
    threading.Thread(target=worker_ends_it_anyway, daemon=True).start()
    ended = Client(stack.url, stack.key).cancel(racing, wait=True, timeout_s=20)
    assert ended.status == "success" and ended.cancel_outcome == "too_late" and ended["cancel"] == "cancelling"


def test_every_verb_takes_a_short_id(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack, store = idle_stack(make_stack)
    ids = [submitted(stack) for _ in range(17)]  # 17 ids, 16 hex digits: two start alike
    done, failed, doomed, queued = ids[:4]
    running(store, done)
    store.finish(done, run_token="t", status=JobStatus.SUCCESS, result={"text": "a red square"})
    running(store, failed)
    store.finish(failed, run_token="t", status=JobStatus.FAILED, error="image_url: not an image")

    # A prefix that starts several ids (before retry adds one, delete takes one): exit 2, each named.
    first = min((c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1),
                key=lambda c: sum(i.startswith(c) for i in ids))
    listed = stack.http.get(f"{stack.url}/jobs", params={"id_prefix": first, "limit": 100}).json()["jobs"]
    assert sorted(j["id"] for j in listed) == sorted(i for i in ids if i.startswith(first))  # the API's filter
    malformed = stack.http.get(f"{stack.url}/jobs", params={"id_prefix": "XYZ"})
    assert malformed.status_code == 400 and malformed.json()["error"]["fields"][0]["field"] == "id_prefix"
    ambiguous = cli(stack, "status", first)
    assert ambiguous.returncode == 2 and "give more of the id" in ambiguous.stderr
    assert all(i in ambiguous.stderr for i in ids if i.startswith(first))
    # One that starts none: exit 1, as an unknown id.
    unknown = next(p for p in (f"{c}{c}{c}{c}" for c in "0123456789abcdef") if not any(i.startswith(p) for i in ids))
    missing = cli(stack, "status", unknown)
    assert missing.returncode == 1 and f"no job of this key has an id that starts with {unknown}" in missing.stderr

    # Each verb, with the 8 characters `c3render jobs` shows.
    def short(job_id: str) -> str:
        return job_id[:8]
    assert cli(stack, "status", short(done)).stdout.startswith(f"{done} analyze success")
    assert cli(stack, "result", short(done)).stdout.strip() == "a red square"
    assert cli(stack, "wait", short(done).upper()).stdout.strip() == "a red square"  # any case
    assert "finished" in cli(stack, "events", short(done)).stdout
    assert cli(stack, "download", short(done), "-o", str(tmp_path / "seen.txt")).returncode == 0
    assert (tmp_path / "seen.txt").read_text().strip() == "a red square"
    assert f"a retry of {failed}" in cli(stack, "retry", short(failed)).stdout
    assert cli(stack, "cancel", short(queued)).returncode == 0
    assert cli(stack, "delete", short(doomed)).stdout.strip() == f"{doomed} deleted"
    gone = cli(stack, "status", doomed)
    assert gone.returncode == 1 and "404" in gone.stderr


class Terminal:
    """The CLI in a pseudo-terminal ``columns`` wide (its window size; COLUMNS unset) that is its
    controlling terminal: a ^C typed there is the kernel's SIGINT to it, as at a shell."""

    def __init__(self, stack: Stack, columns: int, *args: str) -> None:
        env = {k: v for k, v in cli_env(stack.url, stack.key).items() if k not in ("COLUMNS", "LINES")}
        argv = [sys.executable, "-m", "c3render_client.cli", *args]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: its size set before the CLI can read it
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.output = b""
        self.ended = threading.Event()
        self.read_to = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the CLI has closed it
                break
            if not chunk:
                break
            self.output += chunk
        self.ended.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        """The first match after the last one (the output so far, as it comes)."""
        deadline = time.monotonic() + timeout_s
        while not (found := re.compile(pattern).search(self.text, self.read_to)):
            assert time.monotonic() < deadline and not self.ended.is_set(), f"no {pattern!r} in:\n{self.text}"
            time.sleep(0.01)
        self.read_to = found.end()
        return found

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def finish(self, timeout_s: float = 30) -> tuple[int, str]:
        """(exit code, all it wrote) once it has exited."""
        assert self.ended.wait(timeout_s), self.text
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status), self.text


def in_a_terminal(stack: Stack, columns: int, *args: str) -> list[str]:
    code, text = Terminal(stack, columns, *args).finish()
    assert code == 0, text
    return text.rstrip("\n").split("\n")


def test_ctrl_c_typed_at_a_terminal_stops_the_progress_bar_and_asks(make_stack: Callable[..., Stack]) -> None:
    """On a terminal, with rich's bar (and its refresh thread) going, while the CLI long-polls."""
    stack, _ = idle_stack(make_stack)
    term = Terminal(stack, 120, "run", "analyze", "--image", IMAGE)
    job_id = term.expect(r"analyze ([0-9a-f-]{36}) queued").group(1)
    rds = redis.Redis.from_url(stack.env["REDIS_URL"])
    deadline = time.monotonic() + 20
    while not rds.pubsub_numsub(keys.job_channel(job_id))[0][1]:
        assert time.monotonic() < deadline, "the CLI never long-polled"
        time.sleep(0.02)
    typed = time.monotonic()
    term.type(b"\x03")
    term.expect(rf"Cancel job {job_id}\? \[y/N\] ", timeout_s=10)
    assert time.monotonic() - typed < LONG_POLL_S / 5
    term.type(b"y\r")
    code, text = term.finish()
    assert code == 130 and f"job {job_id} cancelled" in text, text
    assert stack.status(job_id)["status"] == "cancelled"


def test_the_jobs_table_fits_the_terminal(make_stack: Callable[..., Stack]) -> None:
    stack, store = idle_stack(make_stack)
    error = ("audio_url: https://media.example.com/a.mp3 is not audio:\nffprobe found no audio stream in it "
             "(give an MP3 or a WAV)")  # its line break is shown as a space
    jobs = {"portrait": submitted(stack, "portrait"), "whisper": submitted(stack, "whisper"),
            "csm": submitted(stack, "csm"), "analyze": submitted(stack, "analyze")}
    running(store, jobs["whisper"])
    store.finish(jobs["whisper"], run_token="t", status=JobStatus.FAILED, error=error)
    running(store, jobs["csm"])
    store.finish(jobs["csm"], run_token="t", status=JobStatus.SUCCESS, result={"text": "hi"})
    running(store, jobs["analyze"])
    stack.http.post(f"{stack.url}/jobs/{jobs['analyze']}/cancel")
    statuses = {"portrait": "queued", "whisper": "failed", "csm": "success", "analyze": "cancelling"}
    for columns, full_ids in ((80, False), (200, False), (80, True)):
        lines = in_a_terminal(stack, columns, "jobs", *(["--full-ids"] if full_ids else []))
        assert lines[0].split()[:3] == ["id", "type", "status"], lines
        assert all(len(line) <= columns for line in lines), (columns, lines)
        for job_type, job_id in jobs.items():
            shown = job_id if full_ids else job_id[:8]
            assert any(re.match(rf"{shown}\s+{job_type}\s+{statuses[job_type]}(\s|$)", line) for line in lines), \
                (columns, job_type, lines)
        failed_line = next(line for line in lines if line.startswith(jobs["whisper"][:8]))
        if columns == 80:  # cut; with short ids, a good part of it is left
            assert failed_line.endswith("…") and (full_ids or "audio_url: https://media" in failed_line), failed_line
        else:
            assert failed_line.endswith(" ".join(error.split())), failed_line  # room for all of it
    # Into a pipe, lines are whole: the error too.
    env = {k: v for k, v in cli_env(stack.url, stack.key).items() if k != "COLUMNS"}
    piped = subprocess.run([sys.executable, "-m", "c3render_client.cli", "jobs"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert " ".join(error.split()) in piped.stdout, piped.stdout


def test_the_cli_tells_its_verbs_types_and_options(make_stack: Callable[..., Stack]) -> None:
    root = Path(__file__).resolve().parents[1]
    top = subprocess.run([str(root / "c3render"), "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and re.search(r"^\s+keys\s+operator commands", top.stdout, re.M), top.stdout
    assert "create" in subprocess.run([str(root / "c3render"), "keys", "--help"], capture_output=True, text=True,
                                      timeout=60).stdout
    jobs_help = subprocess.run([sys.executable, "-m", "c3render_client.cli", "jobs", "--help"], capture_output=True,
                               text=True, timeout=60).stdout
    for option, text in (("--status STATUS", "only the jobs with this status"),
                         ("--type TYPE", "only the jobs of this type"), ("--limit LIMIT", "at most this many jobs"),
                         ("--full-ids", "whole ids")):
        assert re.search(rf"{option}\s+{text}", jobs_help), (option, jobs_help)
    mistyped = subprocess.run([sys.executable, "-m", "c3render_client.cli", "run", "analyze", "--imgae", "x.png"],
                              capture_output=True, text=True, timeout=60)
    assert mistyped.returncode == 2 and mistyped.stderr.startswith("usage: c3render run "), mistyped.stderr
    assert "unrecognized arguments: --imgae" in mistyped.stderr
    stack = make_stack("redis")
    stack.start_api()
    types = next(p for p in stack.http.get(f"{stack.url}/openapi.json").json()["paths"]["/jobs"]["get"]["parameters"]
                 if p["name"] == "type")["schema"]["enum"]
    assert {"csm", "whisper", "portrait", "analyze"} <= set(types)
    for wrong in ("cms", "uploads"):  # no route; a route that is no job type
        unknown = cli(stack, "run", wrong, "--text", "Hello")
        assert unknown.returncode == 2, unknown.stderr
        assert unknown.stderr.strip() == f"c3render: unknown job type {wrong}; the types are: {', '.join(types)}"


def test_webhooks_verify_reads_a_saved_request(stack: Stack, tmp_path: Path) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"id":"j-2","status":"failed","error":"no"}'
    now = int(time.time())
    headers = {"webhook-id": "j-2-completed", "webhook-timestamp": str(now),
               "webhook-signature": sign([secret], "j-2-completed", now, body.encode())}
    saved = tmp_path / "request.json"
    saved.write_text(json.dumps({"headers": headers, "body": body}))
    good = cli(stack, "webhooks", "verify", str(saved), "--secret", secret)
    assert good.returncode == 0 and good.stdout.startswith("valid")
    saved.write_text(json.dumps({"headers": headers, "body": body.replace("no", "yes")}))
    bad = cli(stack, "webhooks", "verify", str(saved), "--secret", secret)
    assert bad.returncode == 1 and bad.stdout.startswith("invalid")


def test_the_sdk_imports_without_the_servers_dependencies() -> None:
    """The client package needs requests and rich only: importing it (and its CLI) loads nothing of the
    server's (chalicelib, worker) nor their dependencies (redis, boto3, chalice)."""
    probe = ("import sys, c3render_client, c3render_client.cli; "
             "print([m for m in ('chalicelib', 'worker', 'redis', 'boto3', 'chalice') if m in sys.modules])")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    deps = tomllib.loads((root / "client" / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in deps} == {"requests", "rich"}
