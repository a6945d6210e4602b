"""`make run`'s stack (devtools/run_local.py): its own Redis, found through .run/, dies with its parent.

Each test runs the stack in a directory of its own (C3RENDER_RUN_DIR), so a developer's
running stack and its .run/ are never touched.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
import requests
from standardwebhooks.webhooks import Webhook

from chalicelib.security.auth import KeyStore
from devtools import run_local, servers
from devtools.run_local import development_key
from tests.receiver import Receiver


class LocalStack:
    def __init__(self, run_dir: Path, api_port: int) -> None:
        self.run_dir = run_dir
        # LOCAL_PORTS=any: every server on a free port, so a test run beside another (or beside make run) never
        # races it for 6380, 5005, 7860...
        self.env = {**os.environ, "API_PORT": str(api_port), "PYTHONUNBUFFERED": "1", "C3RENDER_RUN_DIR": str(run_dir),
                    "LOCAL_PORTS": "any"}
        for name in ("REDIS_URL", "ENV_FILE"):
            self.env.pop(name, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.run_local"], cwd=servers.ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.out = ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in self.out and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out += line
        assert "Ctrl-C stops everything" in self.out, self.out
        self.stack: dict[str, Any] = json.loads((run_dir / "stack.json").read_text())
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.stack['key']}"

    def run(self, job_type: str, body: dict[str, Any], base: str | None = None) -> dict[str, Any]:
        base = base or self.stack["api"]
        reply = self.http.post(f"{base}/{job_type}", json=body, timeout=10)
        assert reply.status_code == 202, reply.text
        job = reply.json()
        deadline = time.monotonic() + 60  # a GPU node is rented from the emulator first; slow on a busy machine
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = self.http.get(f"{base}/status/{job['id']}", timeout=10).json()
            if view["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        worker_log = "\n".join(p.read_text()[-2000:] for p in self.run_dir.glob("worker-*.log"))
        assert view["status"] == "success", f"{view}\n{worker_log}"
        return dict(self.http.get(f"{base}/result/{job['id']}", timeout=10).json())

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=60)
        return rest


def readme_block(heading: str) -> str:
    """The first ``bash`` block of the README's section ``heading``, as a reader pastes it."""
    section = (servers.ROOT / "README.md").read_text().split(f"\n## {heading}\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def try_it(stack: LocalStack, tmp_path: Path) -> None:
    """README's Try it, pasted into a shell at the top of a checkout whose make run is on a port that is
    not 8000: every line talks to that stack, and a refused submit prints the API's error, not a traceback."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".run").symlink_to(stack.run_dir)
    (checkout / "devtools").symlink_to(servers.ROOT / "devtools")
    block = readme_block("Try it")
    assert "8000" not in block
    env = {k: v for k, v in os.environ.items() if k not in ("API", "KEY", "ID")}
    shell = subprocess.run(["bash", "-c", block], cwd=checkout, env=env, capture_output=True, text=True, timeout=240)
    out = shell.stdout
    assert shell.returncode == 0 and "Traceback" not in shell.stderr, out + shell.stderr
    # the status, the result, the portrait and the analysis (the API's JSON is compact)
    assert out.count('"status":"success"') >= 4, out
    assert '"result_url"' in out and '"workers"' in out  # the result, and /health last
    submit = re.search(r"ID=\$\(curl .*?\)'\)", block, re.S)
    assert submit, block
    refused = subprocess.run(["bash", "-c", f"export API={stack.stack['api']} KEY=not-a-key\n{submit.group(0)}"],
                             cwd=checkout, env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "KeyError" not in refused.stderr
    assert '"error"' in refused.stderr and "unauthorized" in refused.stderr.lower(), refused.stderr


def readme_chalice_local(project: Path, port: int) -> list[str]:
    """The README's chalice local command, on this test's project and port."""
    line = next(x for x in readme_block("`chalice local`").splitlines() if x.startswith(".venv/bin/chalice "))
    args = shlex.split(line)[1:]
    assert args[:3] == ["local", "--stage", "local"] and "--no-autoreload" in args and "--port" in args
    args[args.index("--port") + 1] = str(port)
    return [str(servers.BIN / "chalice"), "--project-dir", str(project), *args]


def answers(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split("@")[-1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.3):
            return True
    except OSError:
        return False


def test_the_local_stack_serves_every_tool_and_a_hard_kill_leaves_nothing(tmp_path: Path) -> None:
    port = servers.free_port()
    stack = LocalStack(tmp_path / ".run", port)
    try:
        assert answers(stack.stack["redis"]) and not stack.stack["redis"].endswith(":6379/0")  # its own Redis
        assert (tmp_path / ".run" / "redis").is_dir()
        # The worker is live as soon as the banner is out (its first heartbeat came before it).
        health = requests.get(f"{stack.stack['api']}/health", timeout=5).json()
        assert health["workers"]["live"] >= 1, health
        printed = re.search(r"this key's jobs are signed with (whsec_\S+)", stack.out)
        assert printed and printed.group(1) == stack.stack["webhook_secret"]
        with Receiver() as receiver:  # the secret make run prints verifies the webhooks of its key's jobs
            result = stack.run("csm", {"text": "Hello there.", "notify_url": receiver.url})
            first_job = result["id"]
            hook = receiver.wait_for(1)[0]
        assert Webhook(printed.group(1)).verify(hook.body, hook.headers)["status"] == "success"
        assert requests.get(result["result_url"], timeout=5).status_code == 200
        # ./c3render finds the stack through .run/ ...
        listed = subprocess.run([str(servers.ROOT / "c3render"), "keys", "list"], env=stack.env, capture_output=True,
                                text=True, timeout=30)
        assert listed.returncode == 0 and stack.stack["key_id"] in listed.stdout, listed.stderr
        # ... so do make demo (all four job types) ...
        demo = subprocess.run([sys.executable, "-m", "devtools.demo"], cwd=servers.ROOT, env=stack.env,
                              capture_output=True, text=True, timeout=300)
        assert demo.returncode == 0 and demo.stdout.count('"status": "success"') == 4, demo.stdout + demo.stderr
        # ... and README's Try it, as pasted ...
        try_it(stack, tmp_path)
        # ... and chalice local, as README writes it (its local stage reads the project's .run/stack.env:
        # here the project is a mirror of this one whose .run/ is the test's).
        project = tmp_path / "project"
        project.mkdir()
        for name in ("app.py", "chalicelib", "requirements.txt"):
            (project / name).symlink_to(servers.ROOT / name)
        shutil.copytree(servers.ROOT / ".chalice", project / ".chalice",
                        ignore=shutil.ignore_patterns("deployments", "venv"))
        (project / ".run").symlink_to(tmp_path / ".run")
        local_port = servers.free_port()
        chalice = subprocess.Popen(readme_chalice_local(project, local_port), cwd=project,
                                   env={k: v for k, v in stack.env.items() if k != "C3RENDER_RUN_DIR"},
                                   stdout=(tmp_path / "chalice.log").open("wb"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            servers.wait_port(local_port, timeout_s=30, proc=chalice)
            try:
                stack.run("csm", {"text": "Through chalice local."}, base=f"http://127.0.0.1:{local_port}")
            except AssertionError as err:  # what chalice local said, in the failure
                raise AssertionError(f"{err}\n{(tmp_path / 'chalice.log').read_text()[-3000:]}") from err
        finally:
            chalice.kill()
            chalice.wait(10)
        # A hard kill of make run takes every child with it ...
        children = [stack.stack[name] for name in ("api", "redis", "s3", "devnode", "metrics")]
        os.killpg(stack.proc.pid, signal.SIGKILL)
        stack.proc.wait(10)
        deadline = time.monotonic() + 30
        while any(answers(url) for url in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [url for url in children if answers(url)] == []
        # ... so the next make run starts on the same port, its Redis kept the keys (append-only file), and it
        # uses the same development key again: what the first run's key submitted is listed, by the API and
        # by ./c3render jobs.
        again = LocalStack(tmp_path / ".run", port)
        assert (again.stack["key"], again.stack["key_id"]) == (stack.stack["key"], stack.stack["key_id"])
        assert "kept from the last run" in again.out
        old = again.http.get(f"http://127.0.0.1:{port}/jobs", params={"limit": 100}, timeout=5)
        assert old.status_code == 200 and len(old.json()["jobs"]) >= 6, old.text
        jobs = subprocess.run([str(servers.ROOT / "c3render"), "--json", "jobs"], env=again.env, capture_output=True,
                              text=True, timeout=30)
        assert jobs.returncode == 0 and first_job in jobs.stdout, jobs.stdout + jobs.stderr
        rest = again.stop()
        assert again.proc.returncode == 0 and "stopped." in rest, rest
    finally:
        if stack.proc.poll() is None:
            stack.stop()


def test_the_development_key_is_used_again_while_redis_keeps_it(rds: redis.Redis, tmp_path: Path) -> None:
    store = KeyStore(rds, cache_s=0)
    path = tmp_path / "dev-key"
    key, record, reused = development_key(store, path)
    assert not reused and path.read_text().strip() == key and path.stat().st_mode & 0o077 == 0
    assert development_key(store, path) == (key, record, True)
    store.revoke(record.id)  # a revoked key is not handed out again
    revived, fresh, reused = development_key(store, path)
    assert not reused and revived != key and fresh.id != record.id and path.read_text().strip() == revived
    rds.flushdb()  # a Redis that does not know the key (another REDIS_URL, or a wiped .run/redis)
    assert development_key(store, path)[0] not in (key, revived)


def test_make_run_reports_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "API_PORT": str(port), "C3RENDER_RUN_DIR": str(tmp_path / ".run")}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "devtools.run_local"], cwd=servers.ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and time.monotonic() - started < 10
    assert f"port {port} is taken" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".run" / "redis").exists()  # nothing was started


def test_make_demo_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "C3RENDER_RUN_DIR": str(tmp_path)}
    missing = subprocess.run([sys.executable, "-m", "devtools.demo"], cwd=servers.ROOT, env=env, capture_output=True,
                             text=True, timeout=30)
    assert missing.returncode == 1 and "start one first: make run" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "stack.json").write_text(json.dumps({"api": f"http://127.0.0.1:{servers.free_port()}", "key": "k"}))
    dead = subprocess.run([sys.executable, "-m", "devtools.demo", "--timeout", "5"], cwd=servers.ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert dead.returncode == 1 and "does not answer" in dead.stderr and "Traceback" not in dead.stderr
    assert len(dead.stderr.strip().splitlines()) == 1


def test_two_stacks_starting_at_once_never_share_a_server(monkeypatch: Any, tmp_path: Path) -> None:
    """Two make runs starting together (two test runs on one machine) both found 5005 free; the second's
    moto could not bind it, and the readiness check was answered by the first's. LOCAL_PORTS=any puts
    every server on a free port, and a server of ours that exited after it "answered" is named."""
    usual = servers.free_port()
    assert run_local._port(usual) == usual  # free: the usual port
    monkeypatch.setenv("LOCAL_PORTS", "any")
    assert run_local._port(usual) != usual
    exited = servers.Server(name="moto", proc=subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
                            port=5005, log_path=tmp_path / "moto-5005.log")
    running = servers.Server(name="redis", proc=subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]),
                             port=6380)
    try:
        exited.proc.wait(10)
        assert run_local._lost([running]) is None
        lost = run_local._lost([running, exited])
        assert lost is not None and lost.startswith("moto on port 5005 exited (3): another process took the port")
    finally:
        running.proc.kill()
        running.proc.wait()
