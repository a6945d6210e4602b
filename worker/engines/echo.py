"""The echo engine: a real, cheap engine for tests and the local stack (``WORKER_ENGINE=echo``).

It serves every job type and exercises everything around rendering (leases,
storage, results, webhooks) without a model: text jobs answer with a description
of their input, file jobs make a short WAV of silence. ``ECHO_DELAY_S`` makes each
job take that long (cancellable), for tests of cancellation, kills and shutdown.
"""
from __future__ import annotations

import wave

from chalicelib.jobs.models import Job
from worker.context import JobContext
from worker.engines.base import Engine, Output, OutputFile
from worker.gpu.nodes import Node


def write_silence(path: str, seconds: float = 0.5, rate: int = 16000) -> None:
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))


class EchoEngine(Engine):
    job_type = "*"  # built for every job type
    fetches_inputs = False  # its inputs are only named in its answer

    @property
    def needs_node(self) -> bool:
        return False

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        delay_s = self.deps.echo_delay_s
        if delay_s:
            steps = 10
            for step in range(steps):
                ctx.sleep(delay_s / steps)
                ctx.report((step + 1) / steps)
        ctx.check()
        if self.spec.produces_file:
            path = ctx.workdir / "echo.wav"
            write_silence(str(path))
            return Output(files=[OutputFile(path, "audio/wav")], extra={"engine": "echo"})
        source = next((job.params[f.name] for f in self.spec.input_fields if job.params.get(f.name)), None)
        return Output(text=f"echo: {job.type} of {source}", extra={"engine": "echo"})
