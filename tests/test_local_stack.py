"""`make run`'s stack (devtools/run_local.py) starts, serves a job end to end, and stops cleanly."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests

from devtools import servers


def test_local_stack_runs_a_job_and_stops_everything(tmp_path: object) -> None:
    port = servers.free_port()
    env = {**os.environ, "API_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "devtools.run_local"], cwd=servers.ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything" not in out and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
        key = re.search(r"api key : (c3r_\S+)", out)
        assert key, out
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        base = f"http://127.0.0.1:{port}"
        job = requests.post(f"{base}/csm", json={"text": "Hello there."}, headers=headers, timeout=5).json()
        deadline = time.monotonic() + 60  # a GPU node is rented from the emulator first; slow on a busy machine
        view: dict[str, object] = {}
        while time.monotonic() < deadline:
            view = requests.get(f"{base}/status/{job['id']}", headers=headers, timeout=5).json()
            if view["status"] in ("success", "failed"):
                break
            time.sleep(0.1)
        worker_log = (servers.ROOT / ".run" / "worker-0.log")
        assert view["status"] == "success", f"{view}\n{worker_log.read_text()[-3000:] if worker_log.exists() else ''}"
        result = requests.get(f"{base}/result/{job['id']}", headers=headers, timeout=5).json()
        assert requests.get(result["result_url"], timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + rest
    assert "stopped." in rest
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""
