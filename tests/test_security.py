"""Keys, tenants, rate limits, SSRF on inputs, secrets, TLS and CORS."""
from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
import requests

from chalicelib.ops.logs import Redactor
from chalicelib.security.safehttp import FetchError, TooLarge, UrlPolicy, fetch
from chalicelib.security.urlpolicy import UrlRefused
from chalicelib.settings import Settings
from devtools import servers
from tests.helpers import Stack
from tests.receiver import Answer, Receiver

AUDIO = "https://media.example.com/a.mp3"


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack("redis", AUTH_CACHE_S="0")
    stack.start_api()
    return stack


def c3render(stack: Stack, *args: str) -> str:
    """The operator console command, run as a user would, against this stack's Redis."""
    result = subprocess.run([str(servers.ROOT / "c3render"), *args], env={**os.environ, **stack.env},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_console_command_creates_lists_and_revokes_keys(stack: Stack) -> None:
    created = json.loads(c3render(stack, "keys", "create", "--name", "acme", "--rate", "5", "--max-queued", "7"))
    assert created["key"].startswith("c3r_") and created["webhook_secret"].startswith("whsec_")
    assert (created["name"], created["rate_per_s"], created["max_queued"]) == ("acme", 5.0, 7)
    listed = json.loads(c3render(stack, "keys", "list"))
    assert created["id"] in [k["id"] for k in listed]
    assert created["key"] not in json.dumps(listed)  # keys are never shown again
    raw = __import__("redis").Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    stored = []
    for name in raw.keys("*"):
        kind = raw.type(name)
        if kind == "hash":
            stored += [name, *raw.hgetall(name).values()]
        elif kind == "string":
            stored += [name, raw.get(name)]
        else:
            stored.append(name)
    assert len(stored) > 10 and not [v for v in stored if created["key"] in v]  # only its digest is kept
    assert stack.http.get(f"{stack.url}/jobs", headers={"Authorization": f"Bearer {created['key']}"}).ok


def test_no_wrong_or_revoked_key_is_401(stack: Stack) -> None:
    url = stack.url
    for headers in ({}, {"Authorization": "Bearer c3r_wrong"}, {"X-Api-Key": "nope"}, {"Authorization": "Basic x"}):
        reply = requests.post(f"{url}/whisper", json={"audio_url": AUDIO}, headers=headers)
        assert reply.status_code == 401, headers
        assert reply.json()["error"]["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert requests.get(f"{url}/jobs", headers=headers).status_code == 401
        assert requests.get(f"{url}/status/x", headers=headers).status_code == 401
    assert requests.get(f"{url}/health").status_code == 200
    assert requests.get(f"{url}/openapi.json").status_code == 200
    key, record = stack.new_key("soon-revoked")
    for header in ({"Authorization": f"Bearer {key}"}, {"X-C3-RENDER-KEY": key}, {"X-Api-Key": key}):
        assert requests.post(f"{url}/whisper", json={"audio_url": AUDIO}, headers=header).status_code == 202
    revoked = c3render(stack, "keys", "revoke", record.id)
    assert json.loads(revoked)["revoked"] is True
    reply = requests.get(f"{url}/jobs", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 401 and "revoked" in reply.json()["error"]["message"]


def test_tenants_see_only_their_own_jobs(stack: Stack) -> None:
    url = stack.url
    mine = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    other_key, _ = stack.new_key("other")
    other = {"Authorization": f"Bearer {other_key}"}
    theirs = requests.post(f"{url}/analyze", json={"image_url": "https://x.example/i.png"}, headers=other).json()["id"]
    for method, path in (("GET", "/status/{}"), ("GET", "/jobs/{}"), ("GET", "/result/{}"),
                         ("POST", "/jobs/{}/cancel"), ("GET", "/jobs/{}/webhooks"),
                         ("POST", "/jobs/{}/webhooks/redeliver")):
        reply = requests.request(method, url + path.format(mine), headers=other)
        assert reply.status_code == 404, (method, path, reply.text)
        assert reply.json()["error"]["code"] == "not_found"
    assert stack.status(mine)["status"] == "queued"  # the other tenant's cancel did nothing
    assert [j["id"] for j in stack.http.get(f"{url}/jobs").json()["jobs"]] == [mine]
    assert [j["id"] for j in requests.get(f"{url}/jobs", headers=other).json()["jobs"]] == [theirs]
    admin_key, _ = stack.new_key("ops", admin=True)
    admin = {"Authorization": f"Bearer {admin_key}"}
    assert {j["id"] for j in requests.get(f"{url}/jobs", headers=admin).json()["jobs"]} == {mine, theirs}
    assert requests.get(f"{url}/status/{theirs}", headers=admin).status_code == 200


def test_static_admin_key(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", ADMIN_API_KEY="static-admin-key-123456")
    stack.start_api()
    job = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    reply = requests.get(f"{stack.url}/status/{job}", headers={"Authorization": "Bearer static-admin-key-123456"})
    assert reply.status_code == 200


def test_rate_limit_429_then_recovers(stack: Stack) -> None:
    key, _ = stack.new_key("slow", rate_per_s=2.0, burst=3)
    headers = {"Authorization": f"Bearer {key}"}
    replies = [requests.get(f"{stack.url}/jobs", headers=headers) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert replies[0].headers["RateLimit-Limit"] == "3"
    assert int(replies[0].headers["RateLimit-Remaining"]) >= int(replies[2].headers["RateLimit-Remaining"])
    limited = requests.get(f"{stack.url}/jobs", headers=headers)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 2 and limited.headers["RateLimit-Remaining"] == "0"
    submit = requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers)
    assert submit.status_code == 429  # submits share the same budget
    time.sleep(retry)
    assert requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers).status_code == 202


def test_cap_on_queued_jobs(stack: Stack) -> None:
    key, _ = stack.new_key("capped", max_queued=2)
    headers = {"Authorization": f"Bearer {key}"}
    ids = [requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers).json()["id"]
           for _ in range(2)]
    third = requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers)
    assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_queued_jobs"
    assert "2 queued jobs" in third.json()["error"]["message"]
    requests.post(f"{stack.url}/jobs/{ids[0]}/cancel", headers=headers)
    assert requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=headers).status_code == 202


@pytest.mark.parametrize("field,url", [
    ("audio_url", "http://127.0.0.1:{port}/a.mp3"), ("audio_url", "http://10.0.0.1/a.mp3"),
    ("audio_url", "http://169.254.169.254/latest/meta-data/"), ("audio_url", "http://[::1]:{port}/a.mp3"),
    ("audio_url", "http://localhost:{port}/a.mp3"), ("image_url", "http://172.17.0.1/i.png"),
    ("reference_audio_url", "http://127.0.0.1:{port}/ref.wav")])
def test_private_input_urls_are_refused(api_module: Stack, field: str, url: str) -> None:
    with Receiver() as listener:
        target = url.format(port=listener.port)
        body = {"whisper": {"audio_url": target}, "portrait": {"image_url": target, "audio_url": AUDIO},
                "csm": {"text": "hi", "reference_audio_url": target, "reference_text": "x"}}
        job_type = {"audio_url": "whisper", "image_url": "portrait", "reference_audio_url": "csm"}[field]
        reply = api_module.submit(job_type, body[job_type])
        assert reply.status_code == 400
        reasons = {f["field"]: f["reason"] for f in reply.json()["error"]["fields"]}
        assert reasons[field].startswith("refused: ")
        assert listener.requests == []


class _Redirector:
    """Serves GET with a redirect to ``location`` (a server allow-listed as if it were public)."""

    def __init__(self, location: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    from functools import partial
    from http.server import SimpleHTTPRequestHandler

    (tmp_path / "small.bin").write_bytes(b"x" * 1000)
    (tmp_path / "big.bin").write_bytes(b"x" * 200_000)
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_checks_every_redirect_hop() -> None:
    with Receiver(Answer(200)) as internal:
        redirector = _Redirector(f"http://127.0.0.1:{internal.port}/secret")
        try:
            public_looking = UrlPolicy(allow_private=False, allow_hosts=frozenset({f"127.0.0.1:{redirector.port}"}))
            with pytest.raises(UrlRefused, match="loopback"):
                fetch(f"http://127.0.0.1:{redirector.port}/a.mp3", policy=public_looking, max_bytes=1000,
                      timeout_s=5)
            assert internal.requests == []
        finally:
            redirector.close()


def test_fetch_size_cap_and_errors(file_server: str) -> None:
    policy = UrlPolicy(allow_private=True)
    assert fetch(f"{file_server}/small.bin", policy=policy, max_bytes=5000, timeout_s=5).data == b"x" * 1000
    with pytest.raises(TooLarge, match="limit is 100000"):
        fetch(f"{file_server}/big.bin", policy=policy, max_bytes=100_000, timeout_s=5)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"{file_server}/missing.bin", policy=policy, max_bytes=5000, timeout_s=5)
    with pytest.raises(FetchError, match="could not be fetched"):
        fetch(f"http://127.0.0.1:{servers.free_port()}/x", policy=policy, max_bytes=5000, timeout_s=5)


PLANTED = {"C3_API_KEY": "c3-planted-secret-0001", "WEBHOOK_SECRET": "whsec_cGxhbnRlZC13ZWJob29rLXNlY3JldC0wMDAy",
           "ADMIN_API_KEY": "admin-planted-secret-0003"}


def test_planted_secrets_never_reach_logs_or_responses(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", LOG_LEVEL="DEBUG", **PLANTED)
    stack.start_api()
    worker = stack.start_worker()
    bodies = [stack.submit("whisper", {"audio_url": AUDIO}).text,
              stack.submit("whisper", {"audio_url": "nope"}).text,
              stack.http.get(f"{stack.url}/jobs").text, stack.http.get(f"{stack.url}/health").text,
              requests.get(f"{stack.url}/jobs", headers={"Authorization": "Bearer " + PLANTED["C3_API_KEY"]}).text,
              stack.http.get(f"{stack.url}/openapi.json").text]
    job_id = stack.submit("csm", {"text": "hi"}).json()["id"]
    stack.wait_status(job_id, {"success"})
    bodies.append(stack.http.get(f"{stack.url}/result/{job_id}").text)
    time.sleep(0.5)
    logs = worker.log() + (stack.api.log() if stack.api else "")
    assert "starting with Settings(" in logs  # the settings were logged, redacted
    for name, secret in PLANTED.items():
        assert secret not in logs, name
        assert all(secret not in body for body in bodies), name


def test_log_redaction_and_secret_files(tmp_path: Path) -> None:
    redactor = Redactor(["hunter2-secret"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting with %s", ("hunter2-secret",), None)
    redactor.filter(record)
    assert record.getMessage() == "connecting with ***"
    secret_file = tmp_path / "c3_key"
    secret_file.write_text("from-a-file-secret\n")
    settings = Settings.from_env({"C3_API_KEY_FILE": str(secret_file), "ENV_FILE": "/nonexistent"})
    assert settings.c3_api_key == "from-a-file-secret"
    assert "from-a-file-secret" not in repr(settings)
    assert "from-a-file-secret" in settings.secrets()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    import ipaddress
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_self_hosted_tls(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    stack = make_stack("redis")
    port = servers.free_port()
    proc = servers._spawn("tls-api", [str(servers.BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1",
                                      "wsgi:application"], port,
                          env={**__import__("os").environ, **stack.env, "TLS_CERT_FILE": str(cert),
                               "TLS_KEY_FILE": str(key)}, log_dir=tmp_path)
    try:
        servers.wait_port(port, proc=proc.proc)
        reply = requests.get(f"https://127.0.0.1:{port}/health", verify=str(cert), timeout=5)
        assert reply.status_code == 200 and reply.json()["redis"] == "ok"
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        proc.stop()


def test_cors_off_by_default_and_configurable(make_stack: Callable[..., Stack], stack: Stack) -> None:
    origin = {"Origin": "https://app.example.com"}
    assert "Access-Control-Allow-Origin" not in stack.http.get(f"{stack.url}/jobs", headers=origin).headers
    cors = make_stack("redis", CORS_ALLOW_ORIGINS="https://app.example.com")
    cors.start_api()
    reply = cors.http.get(f"{cors.url}/jobs", headers=origin)
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "RateLimit-Remaining" in reply.headers["Access-Control-Expose-Headers"]
    preflight = requests.options(f"{cors.url}/whisper", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = cors.http.get(f"{cors.url}/jobs", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
