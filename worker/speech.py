"""Speech on a node's CSM Gradio app (``/generate_monologue_audio``): used by the csm and portrait engines."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gradio_client import handle_file

from chalicelib.errors import EngineError
from worker import media
from worker.clients import GradioClients
from worker.context import JobContext
from worker.gpu.nodes import Node

VOICE_PARAM = {"random": "random_voice", "conversational_a": "conversational_a",
               "conversational_b": "conversational_b", "clone": "upload_voice"}


def sentences(params: dict[str, Any]) -> list[str]:
    """The monologue as given, or the text split into sentences."""
    if params.get("monologue"):
        return [s.strip() for s in params["monologue"] if s.strip()]
    parts = re.split(r"(?<=[.!?])\s+", str(params.get("text", "")).strip())
    return [p for p in (part.strip() for part in parts) if p]


def synthesize(params: dict[str, Any], node: Node, ctx: JobContext, *, gradio: GradioClients) -> Path:
    """Speak ``params`` (a csm job's canonical parameters) on the node; returns the MP3 in ``ctx.workdir``.
    A cloned voice's clip is the job's fetched ``reference_audio_url`` input."""
    voice = params["voice"]
    speaker_audio: Any = None
    speaker_text = ""
    if voice == "clone":
        speaker_audio = handle_file(str(media.mono_wav(ctx.inputs["reference_audio_url"].path)))
        speaker_text = params["reference_text"]
    ctx.check()
    produced = gradio.call(
        node.url("csm"), node, ctx, "/generate_monologue_audio", speaker_voice=VOICE_PARAM[voice],
        speaker_text=speaker_text, speaker_audio=speaker_audio, monologue_json=json.dumps(sentences(params)),
        temperature=float(params["temperature"]), topk=int(params["topk"]),
        max_audio_length=int(params["max_audio_length"]), pause_duration=int(params["pause_duration"]))
    if not isinstance(produced, dict):
        raise EngineError(f"the CSM app returned no audio file ({str(produced)[:200]})")
    downloaded = gradio.download(node, [produced], ctx.workdir, ctx)[0]
    return downloaded.rename(ctx.workdir / "speech.mp3")
