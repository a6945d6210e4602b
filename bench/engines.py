"""Orchestration overhead per job type: submit -> success minus the node's time in the model call.

Starts Redis, moto, the devnode, the API (gunicorn) and one worker with the
real engines. Inputs are already in object storage (presigned URLs). For each
job type, N jobs run one after another; a job's overhead is its server-side
finished_at - created_at minus the model time the devnode recorded for it.

    python -m bench.engines [--jobs 20]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import redis
import requests
from PIL import Image, ImageDraw

from chalicelib.security.auth import KeyStore
from devtools import servers

NODE_KEY = "bench-node-key"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    rds, moto = servers.start_redis(log_dir=log_dir), servers.start_moto(log_dir=log_dir)
    devnode = servers.start_devnode(api_key=NODE_KEY, log_dir=log_dir)
    redis_url = f"redis://127.0.0.1:{rds.port}/0"
    env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING",
                            **servers.devnode_env(devnode, NODE_KEY))
    api = servers.start_api(env, log_dir=log_dir)
    worker = servers.start_worker(env, log_dir=log_dir)
    key, _ = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(
        name="bench", rate_per_s=1000, burst=1000)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    node_headers = {"X-C3-API-KEY": NODE_KEY}
    comfy = f"http://127.0.0.1:{devnode.comfy_port}"

    def run(job_type: str, body: dict[str, Any]) -> dict[str, Any]:
        job = http.post(f"{api.url}/{job_type}", json=body, timeout=10).json()
        while True:
            view = http.get(f"{api.url}/status/{job['id']}", timeout=10).json()
            if view["status"] not in ("queued", "running"):
                break
            time.sleep(0.02)
        assert view["status"] == "success", view
        return {**view, **http.get(f"{api.url}/result/{job['id']}", timeout=10).json()}

    def model_time(job_type: str) -> float:
        if job_type == "portrait":
            events = requests.get(f"{comfy}/_devnode/events", headers=node_headers, timeout=5).json()
            return float([e for e in events if e["event"] == "rendered"][-1]["duration_s"])
        service = {"csm": "csm", "whisper": "whisper", "analyze": "ollama.generate"}[job_type]
        calls = requests.get(f"{devnode.url}/_devnode/calls", headers=node_headers, timeout=5).json()
        return float([c for c in calls if c["service"] == service][-1]["duration_s"])

    try:
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        try:
            s3.create_bucket(Bucket="c3-render-results")
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        image = Image.new("RGB", (640, 480), (90, 120, 160))
        ImageDraw.Draw(image).ellipse([230, 120, 410, 360], fill=(230, 190, 160))
        buf = io.BytesIO()
        image.save(buf, "JPEG")
        s3.put_object(Bucket="c3-render-results", Key="inputs/face.jpg", Body=buf.getvalue())
        image_url = s3.generate_presigned_url("get_object", Params={"Bucket": "c3-render-results",
                                                                    "Key": "inputs/face.jpg"})
        audio_url = run("csm", {"text": "Orchestration overhead, measured on loopback."})["result_url"]
        bodies = {"whisper": {"audio_url": audio_url}, "analyze": {"image_url": image_url},
                  "csm": {"text": "A short sentence to speak."},
                  "portrait": {"image_url": image_url, "audio_url": audio_url}}
        figures = {}
        for job_type, body in bodies.items():
            run(job_type, body)  # warm the caches and clients
            totals, vs_model, vs_call = [], [], []
            for _ in range(args.jobs):
                view = run(job_type, body)
                total = _ts(view["finished_at"]) - _ts(view["created_at"])
                totals.append(total)
                vs_model.append(total - model_time(job_type))
                vs_call.append(total - float(view["metrics"]["node_s"]))
            figures[job_type] = (statistics.median(totals), statistics.median(vs_call), max(vs_call),
                                 statistics.median(vs_model))
    finally:
        for server in (worker, api, devnode, moto, rds):
            server.stop()
    print(f"\nper job type, {args.jobs} jobs each, one worker, devnode on loopback, inputs in object storage")
    print("overhead = submit->success minus the time in calls to the node (protocol included);")
    print("the last column subtracts only the model function's own time inside the devnode.")
    print(f"{'type':10} {'p50 total ms':>13} {'p50 overhead ms':>16} {'max overhead ms':>16} {'p50 vs model fn':>16}")
    for job_type, (total, overhead, worst, model_only) in figures.items():
        print(f"{job_type:10} {total * 1000:13.0f} {overhead * 1000:16.0f} {worst * 1000:16.0f} "
              f"{model_only * 1000:16.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
