"""``make run``: the whole service on this machine, no Docker, no GPU, no keys.

Starts (or reuses) Redis, moto server for S3 + SQS, the API under gunicorn on
http://127.0.0.1:8000 and a worker; prints the URLs and a curl example;
Ctrl-C stops everything it started.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import time

import redis

from chalicelib.auth import KeyStore
from chalicelib.settings import read_dotenv
from devtools import servers

API_PORT = int(os.environ.get("API_PORT", "8000"))
DEV_WEBHOOK_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS13ZWJob29rLXNlY3JldA=="  # "development-only-webhook-secret"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _port(preferred: int) -> int:
    return preferred if not _reachable(preferred) else servers.free_port()


def main() -> int:
    run_dir = servers.ROOT / ".run"
    run_dir.mkdir(exist_ok=True)
    started: list[servers.Server] = []
    dotenv = read_dotenv(servers.ROOT / ".env")
    try:
        redis_url = os.environ.get("REDIS_URL") or dotenv.get("REDIS_URL")
        if not redis_url:
            if _reachable(6379):
                redis_url = "redis://127.0.0.1:6379/0"
                print("redis   : using the Redis already on 127.0.0.1:6379")
            else:
                redis_server = servers.start_redis(_port(6380), log_dir=run_dir)
                started.append(redis_server)
                redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
                print(f"redis   : started {servers.redis_binary()} on port {redis_server.port}")
        moto = servers.start_moto(_port(5005), log_dir=run_dir)
        started.append(moto)
        print(f"s3 + sqs: moto server on {moto.url}")
        node_key = secrets.token_urlsafe(16)
        print("devnode : loading the CPU models (a few seconds)...", flush=True)
        devnode = servers.start_devnode(api_key=node_key, port=_port(7860), comfy_port=_port(8188), log_dir=run_dir)
        started.append(devnode)
        env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, **{
            **servers.comput3_env(devnode, node_key), "NODE_READY_TIMEOUT_S": "60", "ALLOW_PRIVATE_URLS": "true",
            "WEBHOOK_SECRET": dotenv.get("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)})
        print(f"devnode : Comput3 emulator {devnode.url}/api/v0; its nodes' services on {devnode.url} and "
              f"http://127.0.0.1:{devnode.comfy_port} (ComfyUI)")
        print("          the worker rents nodes from it (GPU_PROVIDER=comput3): launch, reuse, stop when idle")
        env.pop("ENV_FILE")  # .env values still apply underneath
        if _reachable(API_PORT):
            print(f"port {API_PORT} is taken; set API_PORT to another port", file=sys.stderr)
            return 1
        api = servers.start_api(env, API_PORT, log_dir=run_dir)
        started.append(api)
        metrics_port = _port(9100)
        worker = servers.start_worker({**env, "METRICS_PORT": str(metrics_port)}, log_dir=run_dir)
        started.append(worker)
        key, record = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(
            name="make-run development key", rate_per_s=50, burst=100)
        print(f"api     : {api.url}  (gunicorn; OpenAPI at {api.url}/openapi.json)")
        print(f"worker  : pid {worker.proc.pid}; logs in {run_dir}/; metrics and probes on "
              f"http://127.0.0.1:{metrics_port}/metrics (/healthz, /readyz); the API's on {api.url}/metrics")
        print(f"webhooks: signed with {env['WEBHOOK_SECRET']} (development secret; set WEBHOOK_SECRET in .env)")
        print(f"api key : {key}  (id {record.id}; created for this run; more with ./c3render keys create)")
        (run_dir / "stack.json").write_text(json.dumps({"api": api.url, "key": key, "s3": moto.url}))
        print("\nTry:")
        print(f"  export KEY={key}")
        print(f"  curl -s -X POST {api.url}/csm -H \"Authorization: Bearer $KEY\" \\\n"
              f"       -H 'Content-Type: application/json' -d '{{\"text\": \"Hello there.\"}}'")
        print(f"  curl -s -H \"Authorization: Bearer $KEY\" {api.url}/status/<id>")
        print(f"  curl -s -H \"Authorization: Bearer $KEY\" {api.url}/result/<id>")
        print("  make demo        # submits all four job types and prints their results")
        print("\nCtrl-C stops everything.", flush=True)
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
    finally:
        for server in reversed(started):
            server.stop()
        print("stopped.")


if __name__ == "__main__":
    sys.exit(main())
