"""portrait: a talking-portrait video on the node's ComfyUI (the SONIC graph)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from chalicelib.errors import Cancelled, EngineError, NodeError
from chalicelib.jobs.models import Job
from chalicelib.jobs.spec import JobSpec
from chalicelib.jobs.types import csm
from worker import media
from worker.comfy import ComfyClient, new_client_id, portrait_graph
from worker.context import JobContext
from worker.engines.base import Engine, Output, OutputFile
from worker.engines.deps import EngineDeps
from worker.gpu.nodes import Node
from worker.speech import synthesize


class PortraitEngine(Engine):
    job_type = "portrait"

    def __init__(self, deps: EngineDeps, spec: JobSpec) -> None:
        super().__init__(deps, spec)
        self._clients: dict[str, ComfyClient] = {}

    def client(self, node: Node) -> ComfyClient:
        if node.name not in self._clients:
            self._clients[node.name] = ComfyClient(node)
        return self._clients[node.name]

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        assert node is not None
        image = ctx.inputs["image_url"]  # fetched and checked by the runner
        audio, info = self._audio(job, node, ctx)
        ctx.report(0.05)
        comfy = self.client(node)
        size = media.fit_inside(image.width, image.height)
        with ctx.on_node():
            comfy.wait_ready(ctx, self.deps.node_ready_timeout_s)
            graph = portrait_graph(image=comfy.upload(image.path), audio=comfy.upload(audio), width=size[0],
                                   height=size[1], audio_seconds=info.duration_s, job_id=job.id)
            video = self._render(comfy, graph, ctx)
        ctx.report(1.0)
        return Output(files=[OutputFile(video, "video/mp4")],
                      extra={"width": size[0], "height": size[1], "content_type": "video/mp4",
                             "duration_s": round(info.duration_s, 3)})

    def _audio(self, job: Job, node: Node, ctx: JobContext) -> tuple[Path, media.MediaInfo]:
        if job.params.get("text"):
            speech = synthesize({**csm.SPEC.defaults(), "text": job.params["text"], "voice": job.params["voice"],
                                 "reference_text": job.params.get("reference_text", "")},  # a voice_id's
                                node, ctx, gradio=self.deps.gradio)
            info = media.probe(speech)
            if info is None:
                raise EngineError("the synthesised speech could not be read")
            return speech, info
        audio = ctx.inputs["audio_url"]
        assert audio.audio is not None  # an audio input is probed when fetched
        return media.as_mp3(audio.path, audio.audio), audio.audio

    def _render(self, comfy: ComfyClient, graph: dict[str, Any], ctx: JobContext) -> Path:
        client_id = new_client_id()
        box: dict[str, str] = {}
        comfy.follow_progress(client_id, box, ctx)
        prompt_id = comfy.queue_prompt(graph, client_id)
        box["id"] = prompt_id
        try:
            while True:
                ctx.sleep(0.25)
                entry = comfy.history(prompt_id)
                if entry is not None:
                    break
        except Cancelled:
            comfy.cancel(prompt_id)
            raise
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            messages = status.get("messages", [])
            detail = next((m[1].get("exception_message") for m in messages
                           if m and m[0] == "execution_error" and isinstance(m[1], dict)), None)
            raise NodeError(f"ComfyUI failed to render the portrait: {detail or status.get('status_str')}")
        outputs = entry.get("outputs", {}).get("13", {})
        files = outputs.get("gifs") or outputs.get("videos") or []
        if not files:
            raise NodeError("ComfyUI finished without a video in its outputs")
        return comfy.download(files[0], ctx.workdir / "portrait.mp4")


ENGINE = PortraitEngine
