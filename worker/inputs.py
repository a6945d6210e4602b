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

from chalicelib.errors import InputError
from chalicelib.files.storage import ObjectStorage
from chalicelib.jobs.models import Job
from chalicelib.jobs.spec import JobSpec
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


def fetch_inputs(spec: JobSpec, job: Job, *, limits: media.Limits, workdir: Path,
                 storage: ObjectStorage | None) -> dict[str, Input]:
    """Each input the job gives, by field name: declared URL fields fetched over HTTP, and bucket
    objects (uploads, a voice's clip: ``job.inputs``) read from the bucket directly. Raises
    :class:`InputError` naming the field."""
    sources: dict[str, tuple[str, str]] = {}  # field -> (kind, URL or "bucket")
    for field in spec.input_fields:
        if job.params.get(field.name):
            sources[field.name] = (field.media, job.params[field.name])
    for name, stored in job.inputs.items():
        sources[name] = (stored["kind"], "bucket")
    inputs: dict[str, Input] = {}
    for name, (kind, source) in sources.items():
        started = time.monotonic()
        if source == "bucket":
            path = _from_bucket(job.inputs[name]["key"], name, kind=kind, limits=limits, workdir=workdir,
                                storage=storage)
        else:
            path = media.download(source, name, limits=limits, kind=kind, workdir=workdir)
        if kind == "audio":
            path, info = media.check_audio(path, name, limits=limits)
            inputs[name] = Input(name, kind, path, path.stat().st_size, time.monotonic() - started, audio=info)
        else:
            path, (width, height) = media.check_image(path, name, limits=limits, workdir=workdir)
            inputs[name] = Input(name, kind, path, path.stat().st_size, time.monotonic() - started,
                                 width=width, height=height)
    return inputs


def _from_bucket(key: str, field: str, *, kind: str, limits: media.Limits, workdir: Path,
                 storage: ObjectStorage | None) -> Path:
    """An upload or a voice's clip, read from the bucket (no HTTP, no SSRF path)."""
    if storage is None:
        raise InputError(f"{field}: object storage is not available to read the upload")
    cap = limits.max_image_bytes if kind == "image" else limits.max_audio_bytes
    path = workdir / f"{field}{Path(key).suffix.lower()[:8] or '.bin'}"
    try:
        found = storage.download(key, path, max_bytes=cap)
    except ValueError as err:
        raise InputError(f"{field}: the upload {err}") from err
    if found is None:
        raise InputError(f"{field}: the upload was never uploaded (nothing was PUT to its upload_url), "
                         "or it has expired")
    return path
