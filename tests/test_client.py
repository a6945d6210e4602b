"""The client package (client/): the SDK and the c3render job verbs, against the real stack and devnode."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
from c3render_client.errors import WebhookVerificationError

from chalicelib.webhooks import sign
from devtools import servers
from tests.helpers import Stack, devnode_stack
from tests.media_fixtures import portrait, red_square, stereo_tone
from worker.media import moov_first


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


def cli(stack: Stack, *args: str, key: str | None = None, timeout_s: float = 120,
        **popen: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "C3RENDER_URL": stack.url, "C3RENDER_API_KEY": key or stack.key,
           "C3RENDER_CONFIG": "/nonexistent", "C3RENDER_STACK": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "c3render_client.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout_s, **popen)


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


def test_ctrl_c_asks_and_cancels_the_job(make_stack: Callable[..., Stack]) -> None:
    slow = make_stack("redis", ECHO_DELAY_S="30")
    slow.start_api()
    slow.start_worker()
    env = {**os.environ, "C3RENDER_URL": slow.url, "C3RENDER_API_KEY": slow.key, "C3RENDER_STACK": "/nonexistent"}
    proc = subprocess.Popen([sys.executable, "-m", "c3render_client.cli", "run", "analyze", "--image",
                             "https://media.example.com/p.png"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None and proc.stdin is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "running" in line:
            break
    job_id = next(found.group(1) for line in lines if (found := re.search(r"analyze ([0-9a-f]{8})", line)))
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.stdin.write("y\n")
    proc.stdin.flush()
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "cancelled" in rest, rest
    full_id = next(j["id"] for j in slow.http.get(f"{slow.url}/jobs").json()["jobs"] if j["id"].startswith(job_id))
    assert slow.wait_status(full_id, {"cancelled"}, timeout_s=20)["status"] == "cancelled"


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
