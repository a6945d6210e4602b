"""A job's inputs, fetched and checked before it asks for a GPU node.

Every input URL field a job type declares (``media="audio"`` or ``"image"`` in its
spec) is fetched through the SSRF guard with its size cap and probed: audio must
decode and fit ``MAX_AUDIO_DURATION_S``; an image is judged from its header
(``MAX_IMAGE_PIXELS``) and shrunk past 2048 px. A caller's fault here fails the job
(:class:`InputError` naming the field) before any node is leased or launched.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from chalicelib.jobspec import JobSpec
from chalicelib.models import Job
from worker import media
from worker.media import MediaInfo


@dataclass(frozen=True)
class Input:
    """One fetched input, ready for the engine."""

    field: str
    kind: str  # audio | image
    path: Path
    bytes: int
    fetch_s: float
    audio: MediaInfo | None = None  # for audio: streams and duration
    width: int = 0  # for images (after any shrinking)
    height: int = 0

    def summary(self) -> dict[str, object]:
        """What the job's timeline says about it."""
        out: dict[str, object] = {"field": self.field, "bytes": self.bytes, "seconds": round(self.fetch_s, 3)}
        if self.audio is not None:
            out["duration_s"] = round(self.audio.duration_s, 3)
        if self.width:
            out["width"], out["height"] = self.width, self.height
        return out


def fetch_inputs(spec: JobSpec, job: Job, *, limits: media.Limits, workdir: Path) -> dict[str, Input]:
    """Each declared input the job gives, by field name. Raises :class:`InputError` naming the field."""
    inputs: dict[str, Input] = {}
    for field in spec.input_fields:
        url = job.params.get(field.name)
        if not url:
            continue
        started = time.monotonic()
        if field.media == "audio":
            path, info = media.audio_input(url, field.name, limits=limits, workdir=workdir)
            inputs[field.name] = Input(field.name, "audio", path, path.stat().st_size, time.monotonic() - started,
                                       audio=info)
        else:
            path, (width, height) = media.image_input(url, field.name, limits=limits, workdir=workdir)
            inputs[field.name] = Input(field.name, "image", path, path.stat().st_size, time.monotonic() - started,
                                       width=width, height=height)
    return inputs
