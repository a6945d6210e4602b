"""``make demo``: submit one job of each type to the running ``make run`` stack and print the results.

The speech from the csm job is transcribed and made into a talking portrait of the
sample face (devtools/samples/face.jpg); the sample red square is analysed. The
images go in as data: URIs (the API stores them as uploads). Every failure is one clear
line, and every wait has a timeout (``--timeout``, 120 s per job).
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any

import requests

from devtools.run_local import run_dir
from devtools.servers import ROOT

SAMPLES = ROOT / "devtools" / "samples"


class DemoError(Exception):
    """Something the person running the demo should read, in one line."""


def sample(name: str, content_type: str) -> str:
    """A sample image as a data: URI."""
    return f"data:{content_type};base64,{base64.b64encode((SAMPLES / name).read_bytes()).decode()}"


class Demo:
    def __init__(self, stack: dict[str, Any], timeout_s: float) -> None:
        self.api = stack["api"]
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {stack['key']}"

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            reply = self.http.request(method, f"{self.api}{path}", timeout=10, **kwargs)
        except requests.RequestException as err:
            raise DemoError(f"the API at {self.api} does not answer ({type(err).__name__}); "
                            "is make run going?") from err
        try:
            body = dict(reply.json())
        except ValueError as err:
            raise DemoError(f"{method} {path}: HTTP {reply.status_code}, not JSON") from err
        if reply.status_code >= 400 and not (reply.status_code == 409 and "result" in path):
            error = body.get("error", {})
            raise DemoError(f"{method} {path}: HTTP {reply.status_code} {error.get('code')}: {error.get('message')}")
        return body

    def run(self, job_type: str, body: dict[str, Any]) -> dict[str, Any]:
        job = self.call("POST", f"/{job_type}", json=body)
        started = time.monotonic()
        while True:
            status = self.call("GET", f"/status/{job['id']}")
            if status["status"] not in ("queued", "running"):
                break
            if time.monotonic() - started > self.timeout_s:
                raise DemoError(f"{job_type} job {job['id']} is still {status['status']} after {self.timeout_s:.0f} s")
            time.sleep(0.3)
        result = self.call("GET", f"/result/{job['id']}")
        shown = {k: v for k, v in result.items() if k not in ("segments", "files")}
        print(f"\n{job_type} ({time.monotonic() - started:.1f} s): {json.dumps(shown, indent=2)}", flush=True)
        if result["status"] != "success":
            raise DemoError(f"{job_type} job {job['id']} ended {result['status']}: {result.get('error')}")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each job")
    args = parser.parse_args(argv)
    stack_file = run_dir() / "stack.json"
    try:
        stack = json.loads(stack_file.read_text())
    except (OSError, ValueError):
        print(f"make demo: no running stack ({stack_file} is missing); start one first: make run", file=sys.stderr)
        return 1
    try:
        demo = Demo(stack, args.timeout)
        speech = demo.run("csm", {"text": "Hello from the render service. This is a talking portrait demo."})
        demo.run("whisper", {"audio_url": speech["result_url"]})
        demo.run("portrait", {"image_url": sample("face.jpg", "image/jpeg"), "audio_url": speech["result_url"]})
        demo.run("analyze", {"image_url": sample("red.png", "image/png"), "prompt": "What is in this picture?"})
    except DemoError as err:
        print(f"make demo: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
