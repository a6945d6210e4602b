"""The echo engine: a real, cheap engine for tests and the local stack.

It exercises everything around rendering (leases, storage, results, webhooks)
without a model: text jobs answer with a description of their input, media
jobs store a short WAV of silence. ``delay_s`` makes each job take that long
(cancellable), for tests of cancellation, kills and shutdown.
"""
from __future__ import annotations

import io
import wave
from typing import Any

from chalicelib.models import Job, JobType
from worker.engines.base import Engine, JobContext, Result


def silence_wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


class EchoEngine(Engine):
    needs_node = False

    def __init__(self, job_type: JobType, *, delay_s: float = 0.0) -> None:
        self.job_type = job_type.value
        self.delay_s = delay_s

    def run(self, job: Job, node: Any, ctx: JobContext) -> Result:
        if self.delay_s:
            steps = 10
            for step in range(steps):
                ctx.sleep(self.delay_s / steps)
                ctx.report((step + 1) / steps)
        ctx.check()
        if job.type.produces_file:
            if ctx.storage is None:
                raise RuntimeError("echo engine needs object storage for media jobs")
            key = ctx.storage.put_bytes(f"results/{job.id}/echo.wav", silence_wav(), "audio/wav")
            return Result(key=key, extra={"engine": "echo"})
        source = job.params.get("audio_url") or job.params.get("image_url")
        return Result(text=f"echo: {job.type.value} of {source}", extra={"engine": "echo"})
