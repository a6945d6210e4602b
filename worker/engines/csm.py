"""csm: text to speech on the node's CSM Gradio app (``/generate_monologue_audio``)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from gradio_client import handle_file

from chalicelib.errors import EngineError
from chalicelib.models import Job
from worker import media
from worker.engines.base import Engine, JobContext, Result
from worker.engines.deps import EngineDeps, storage_of
from worker.nodes import Node

VOICE_PARAM = {"random": "random_voice", "conversational_a": "conversational_a",
               "conversational_b": "conversational_b", "clone": "upload_voice"}


def sentences(params: dict[str, Any]) -> list[str]:
    """The monologue as given, or the text split into sentences."""
    if params.get("monologue"):
        return [s.strip() for s in params["monologue"] if s.strip()]
    parts = re.split(r"(?<=[.!?])\s+", str(params.get("text", "")).strip())
    return [p for p in (part.strip() for part in parts) if p]


def synthesize(params: dict[str, Any], node: Node, ctx: JobContext, deps: EngineDeps, workdir: Path) -> Path:
    """Speak ``params`` on the node; returns the MP3 file."""
    voice = params.get("voice", "random")
    speaker_audio: Any = None
    speaker_text = ""
    if voice == "clone":
        clip, _ = media.audio_input(params["reference_audio_url"], "reference_audio_url", limits=deps.limits,
                                    workdir=workdir)
        speaker_audio = handle_file(str(media.mono_wav(clip)))
        speaker_text = params["reference_text"]
    ctx.check()
    produced = deps.gradio.call(
        node.url("csm"), node, ctx, "/generate_monologue_audio", speaker_voice=VOICE_PARAM[voice],
        speaker_text=speaker_text, speaker_audio=speaker_audio, monologue_json=json.dumps(sentences(params)),
        temperature=float(params.get("temperature", 0.9)), topk=int(params.get("topk", 50)),
        max_audio_length=int(params.get("max_audio_length", 10000)),
        pause_duration=int(params.get("pause_duration", 150)))
    if not isinstance(produced, dict):
        raise EngineError(f"the CSM app returned no audio file ({str(produced)[:200]})")
    downloaded = deps.gradio.download(node, [produced], workdir, ctx)[0]
    return downloaded.rename(workdir / "speech.mp3")


class CsmEngine(Engine):
    job_type = "csm"

    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps

    def run(self, job: Job, node: Node, ctx: JobContext) -> Result:
        workdir = media.workdir()
        try:
            mp3 = synthesize(job.params, node, ctx, self.deps, workdir)
            info = media.probe(mp3)
            key = storage_of(ctx).put_file(f"results/{job.id}/speech.mp3", mp3, "audio/mpeg")
            return Result(key=key, extra={"duration_s": round(info.duration_s, 3) if info else None,
                                          "voice": job.params.get("voice", "random"), "content_type": "audio/mpeg"})
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
