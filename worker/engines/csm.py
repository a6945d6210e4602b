"""csm: text to speech on the node's CSM Gradio app."""
from __future__ import annotations

from chalicelib.jobs.models import Job
from worker.context import JobContext
from worker.engines.base import Engine, Output, OutputFile
from worker.gpu.nodes import Node
from worker.speech import synthesize


class CsmEngine(Engine):
    job_type = "csm"

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        assert node is not None
        mp3 = synthesize(job.params, node, ctx, gradio=self.deps.gradio)
        # The runner checks the MP3 decodes and records its duration_s.
        return Output(files=[OutputFile(mp3, "audio/mpeg")],
                      extra={"voice": job.params["voice"], "content_type": "audio/mpeg"})


ENGINE = CsmEngine
