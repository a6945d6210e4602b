"""``make demo``: submit one job of each type to the running ``make run`` stack and print the results.

The speech from the csm job is transcribed and made into a talking portrait of the
sample face (devtools/samples/face.jpg); the sample red square is analysed. The demo uses
the Python client (client/), which uploads the sample images (POST /uploads). Every failure is one clear
line, and every wait has a timeout (``--timeout``, 120 s per job).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from c3render_client import Client, errors

from devtools.run_local import run_dir
from devtools.servers import ROOT

SAMPLES = ROOT / "devtools" / "samples"


class DemoError(Exception):
    """Something the person running the demo should read, in one line."""


class Demo:
    """The demo drives the stack through the Python client (client/), so it retries a 503 or a
    dropped connection as any caller should, and waits on the job's timeline, not by polling."""

    def __init__(self, stack: dict[str, Any], timeout_s: float) -> None:
        self.api = stack["api"]
        self.timeout_s = timeout_s
        self.client = Client(self.api, stack["key"], timeout_s=30, max_retries=3)

    def run(self, job_type: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            job = self.client.run(job_type, timeout_s=self.timeout_s, raise_on_failure=False, **body)
        except errors.ConnectionFailed as err:
            raise DemoError(f"the API at {self.api} does not answer; is make run going? ({err})") from err
        except errors.WaitTimeout as err:
            raise DemoError(f"{job_type}: {err}") from err
        except errors.APIError as err:
            raise DemoError(f"{job_type}: {err}") from err
        shown = {k: v for k, v in job.items() if k in RESULT_FIELDS}
        print(f"\n{job_type} ({time.monotonic() - started:.1f} s): {json.dumps(shown, indent=2)}", flush=True)
        if job.get("status") != "success":
            raise DemoError(f"{job_type} job {job['id']} ended {job.get('status')}: {job.get('error')}")
        return job


RESULT_FIELDS = ("id", "type", "status", "result_url", "text", "language", "content_type", "duration_s",
                 "gpu_seconds", "cost", "error")


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
        demo.run("portrait", {"image_url": SAMPLES / "face.jpg", "audio_url": speech["result_url"]})
        demo.run("analyze", {"image_url": SAMPLES / "red.png", "prompt": "What is in this picture?"})
    except DemoError as err:
        print(f"make demo: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
