"""whisper: speech to text on the node's WhisperX Gradio app (``/transcribe_audio``)."""
from __future__ import annotations

import json
from typing import Any

from gradio_client import handle_file

from chalicelib.errors import EngineError
from chalicelib.jobs.models import Job
from worker.context import JobContext
from worker.engines.base import Engine, Output, OutputFile
from worker.gpu.nodes import Node

CONTENT_TYPES = {"json": "application/json", "txt": "text/plain; charset=utf-8", "srt": "application/x-subrip",
                 "vtt": "text/vtt"}


class WhisperEngine(Engine):
    job_type = "whisper"

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        assert node is not None
        audio = ctx.inputs["audio_url"]  # fetched and checked by the runner
        ctx.check()
        answer = self.deps.gradio.call(
            node.url("whisper"), node, ctx, "/transcribe_audio", audio_file=handle_file(str(audio.path)),
            model=job.params["model"], task=job.params["task"], language=job.params["language"], device="cuda",
            compute_type="float16", batch_size=16, vad_method="pyannote", word_timestamps=True,
            segment_resolution="sentence")
        text, outputs = self._unpack(answer)
        paths = self.deps.gradio.download(node, outputs, ctx.workdir, ctx)
        by_ext = {p.suffix.lstrip(".").lower(): p for p in paths if p.suffix.lstrip(".").lower() in CONTENT_TYPES}
        segments: list[dict[str, Any]] = []
        language = job.params["language"] or None
        if "json" in by_ext:
            data = json.loads(by_ext["json"].read_text())
            segments = [{"start": s.get("start"), "end": s.get("end"), "text": str(s.get("text", "")).strip()}
                        for s in data.get("segments", [])]
            language = data.get("language") or language
        files = [OutputFile(path, CONTENT_TYPES[ext], role=ext, name=f"transcript.{ext}")
                 for ext, path in by_ext.items()]
        duration = round(audio.audio.duration_s, 3) if audio.audio else None
        return Output(text=text, files=files, extra={"segments": segments, "language": language,
                                                     "duration_s": duration})

    @staticmethod
    def _unpack(answer: Any) -> tuple[str, list[Any]]:
        """WhisperX answers ``(text, [files])``, and ``("Error: ...", [])`` instead of raising."""
        if not isinstance(answer, (list, tuple)) or len(answer) != 2:
            raise EngineError(f"the WhisperX app answered in an unknown shape: {str(answer)[:200]}")
        text, files = answer
        text = str(text or "")
        files = list(files or []) if not isinstance(files, (str, dict)) else [files]
        if text.startswith("Error:") and not files:
            raise EngineError(f"transcription failed: {text[len('Error:'):].strip()[:500]}")
        return text.strip(), files


ENGINE = WhisperEngine
