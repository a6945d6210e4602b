"""Files in and out, measured: a large upload never passes through the API; bad inputs cost no GPU.

1. A 40 MB recording is uploaded (POST /uploads, then PUT straight to the bucket) and transcribed
   by a whisper job on the devnode; the API's memory (all its processes) before and after.
2. 100 jobs whose inputs are broken (not audio, missing, not an image) on a cold pool rented from
   the Comput3 emulator: how many nodes were launched (must be 0), and whether any job's view has
   a node or GPU seconds.

    python -m bench.files
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import redis
import requests

from bench.serving import rss_mb
from chalicelib.security.auth import KeyStore
from devtools import servers
from tests.media_fixtures import FileServer

KEY = "bench-devnode-key"


def recording(path: Path, megabytes: int) -> Path:
    """A stereo 44.1 kHz WAV of speech-like noise, about ``megabytes`` MB."""
    seconds = megabytes * 1024 * 1024 / (44100 * 2 * 2)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"anoisesrc=d={seconds:.1f}:c=pink:a=0.05", "-ac", "2", "-ar", "44100", str(path)],
                   check=True)
    return path


def broken_jobs(count: int, *, env: dict[str, str], devnode: servers.Server, files: FileServer,
                http: requests.Session, log_dir: Path) -> tuple[int, int, int, int]:
    """``count`` jobs whose inputs are broken (not audio, missing, not an image) through the API and a
    worker renting from the Comput3 emulator, on a cold pool. Returns (failed, nodes launched, views with
    a node or GPU seconds, jobs). ``files`` serves ``notes.txt`` (text)."""
    c3 = {**env, **servers.comput3_env(devnode, KEY)}
    started = [servers.start_api(c3, log_dir=log_dir)]
    try:
        started.append(servers.start_worker(c3, log_dir=log_dir))
        api = started[0]
        stats = f"{devnode.url}/api/v0/_devnode/stats"
        launches = requests.get(stats, headers={"X-C3-API-KEY": KEY}, timeout=5).json()["launches"]
        bodies = [("whisper", {"audio_url": files.url("notes.txt")}), ("whisper", {"audio_url": files.url("gone.mp3")}),
                  ("analyze", {"image_url": files.url("notes.txt")}),
                  ("portrait", {"image_url": files.url("gone.png"), "text": "Hi."})]
        ids = [http.post(f"{api.url}/{kind}", json=body, timeout=10).json()["id"]
               for n in range(count) for kind, body in [bodies[n % len(bodies)]]]
        views = [http.get(f"{api.url}/jobs/{job_id}", params={"wait": "60"}, timeout=70).json() for job_id in ids]
        launched = requests.get(stats, headers={"X-C3-API-KEY": KEY}, timeout=5).json()["launches"] - launches
        failed = sum(v["status"] == "failed" for v in views)
        with_node = sum(v["node"] is not None or v["gpu_seconds"] != 0 for v in views)
        return failed, launched, with_node, len(ids)
    finally:
        for server in started:
            server.stop()


def main() -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="bench-files-"))
    work = Path(tempfile.mkdtemp(prefix="bench-files-inputs-"))
    rds = servers.start_redis(log_dir=log_dir)
    moto = servers.start_moto(log_dir=log_dir)
    devnode = servers.start_devnode(api_key=KEY, log_dir=log_dir)
    redis_url = f"redis://127.0.0.1:{rds.port}/0"
    key, _ = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create(
        name="bench", rate_per_s=1e6, burst=1_000_000, max_queued=10_000_000)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    (work / "notes.txt").write_text("not audio\n" * 50)
    files = FileServer(work)
    started: list[servers.Server] = []
    try:
        env = servers.stack_env(redis_url=redis_url, s3_url=moto.url, LOG_LEVEL="WARNING", WORKER_LEASE_S="60",
                                **servers.devnode_env(devnode, KEY))
        api = servers.start_api(env, log_dir=log_dir)
        started.append(api)
        started.append(servers.start_worker(env, log_dir=log_dir))
        path = recording(work / "talk.wav", 40)
        size = path.stat().st_size
        for _ in range(8):  # every API process has made its storage client once (boto3 is heavy to load)
            small = http.post(f"{api.url}/uploads", json={"filename": "warm.wav", "content_type": "audio/wav",
                                                          "size": 4}, timeout=10).json()
            requests.put(small["upload_url"], data=b"RIFF", headers=small["upload_headers"], timeout=10)
        before = rss_mb(api.proc.pid)
        made = http.post(f"{api.url}/uploads", json={"filename": "talk.wav", "content_type": "audio/wav",
                                                     "size": size}, timeout=10).json()
        with path.open("rb") as body:
            assert requests.put(made["upload_url"], data=body, headers=made["upload_headers"],
                                timeout=120).status_code == 200
        after_upload = rss_mb(api.proc.pid)
        clock = time.monotonic()
        job = http.post(f"{api.url}/whisper", json={"audio_url": made["url"], "model": "tiny"},
                        headers={"Prefer": "wait=60"}, timeout=70).json()
        while job["status"] in ("queued", "running"):
            job = http.get(f"{api.url}/jobs/{job['id']}", params={"wait": "60"}, timeout=70).json()
        after_job = rss_mb(api.proc.pid)
        print(f"\n1. a {size / 1e6:.1f} MB upload, then whisper on it ({job['status']} in "
              f"{time.monotonic() - clock:.0f} s, {len(job.get('text', ''))} characters of transcript)")
        print(f"   API memory (all its processes): {before:.1f} MB before, {after_upload:.1f} MB after the upload, "
              f"{after_job:.1f} MB after the job: +{after_job - before:.1f} MB")
        for server in started:
            server.stop()
        started.clear()

        failed, launched, with_node, count = broken_jobs(100, env=env, devnode=devnode, files=files, http=http,
                                                         log_dir=log_dir)
        print(f"\n2. {count} jobs with broken inputs on a cold pool: {failed} failed with the field named, "
              f"{launched} nodes launched, {with_node} views with a node or GPU seconds")
    finally:
        for server in started:
            server.stop()
        files.close()
        devnode.stop()
        moto.stop()
        rds.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
