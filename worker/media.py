"""Inputs and media: safe downloads with caps, type sniffing, ffmpeg conversions, image shrinking.

ffmpeg comes from the ``imageio-ffmpeg`` package, so no system ffmpeg is needed.
Every failure here is the caller's fault and becomes an :class:`InputError`
that names the input field.
"""
from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, UnidentifiedImageError

from chalicelib.errors import InputError
from chalicelib.security.safehttp import FetchError, TooLarge, UrlPolicy, fetch
from chalicelib.security.urlpolicy import UrlRefused, redact_url
from chalicelib.settings import Settings

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
log = logging.getLogger(__name__)
MAX_IMAGE_SIDE = 2048
CONVERT_TO_MP3 = {".m4a", ".aac", ".webm", ".ogg", ".opus", ".mp4", ".mov", ".mkv", ".avi"}


@dataclass(frozen=True)
class Limits:
    policy: UrlPolicy
    max_audio_bytes: int
    max_image_bytes: int
    max_audio_duration_s: float
    max_image_pixels: int
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(policy=UrlPolicy(settings.allow_private_urls, settings.url_allow_hosts),
                   max_audio_bytes=settings.max_audio_bytes, max_image_bytes=settings.max_image_bytes,
                   max_audio_duration_s=settings.max_audio_duration_s, max_image_pixels=settings.max_image_pixels,
                   timeout_s=settings.fetch_timeout_s)


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    channels: int
    sample_rate: int
    has_audio: bool
    has_video: bool
    width: int = 0
    height: int = 0
    video_codec: str = ""


def probe(path: Path) -> MediaInfo | None:
    """What ffmpeg reads from the file's headers, or None when it is not media."""
    done = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, timeout=60)
    text = done.stderr.decode(errors="replace")
    audio = re.search(r"Stream #.*?Audio: (\w+).*?, (\d+) Hz, ([^,\n]+)", text)
    video = re.search(r"Stream #.*?Video: (\w+).*?, (\d{2,5})x(\d{2,5})", text)
    if not audio and not video:
        return None
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    layout = audio.group(3).strip() if audio else ""
    channels = 1 if layout.startswith("mono") else 2 if layout.startswith("stereo") else (
        int(layout.split()[0]) if layout[:1].isdigit() else (2 if audio else 0))
    return MediaInfo(seconds, channels, int(audio.group(2)) if audio else 0, bool(audio), bool(video),
                     int(video.group(2)) if video else 0, int(video.group(3)) if video else 0,
                     video.group(1) if video else "")


def _ffmpeg(args: list[str], what: str) -> None:
    done = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True,
                          timeout=600)
    if done.returncode != 0:
        raise InputError(f"{what}: ffmpeg failed: {done.stderr.decode(errors='replace').strip()[-200:]}")


def download(url: str, field: str, *, limits: Limits, kind: str, workdir: Path) -> Path:
    """Fetch an input URL to a file. Raises :class:`InputError` naming ``field``."""
    cap = limits.max_image_bytes if kind == "image" else limits.max_audio_bytes
    try:
        fetched = fetch(url, policy=limits.policy, max_bytes=cap, timeout_s=limits.timeout_s)
    except UrlRefused as err:
        raise InputError(f"{field}: refused: {err}") from err
    except TooLarge as err:
        raise InputError(f"{field}: the file {err}") from err
    except FetchError as err:
        raise InputError(f"{field}: {redact_url(url)} {err}") from err
    suffix = Path(url.split("?")[0]).suffix.lower()[:8] or ".bin"
    path = workdir / f"{field}{suffix}"
    path.write_bytes(fetched.data)
    return path


def audio_input(url: str, field: str, *, limits: Limits, workdir: Path) -> tuple[Path, MediaInfo]:
    """A downloaded file that ffmpeg decodes as audio, within the duration cap."""
    return check_audio(download(url, field, limits=limits, kind="audio", workdir=workdir), field, limits=limits)


def check_audio(path: Path, field: str, *, limits: Limits) -> tuple[Path, MediaInfo]:
    """A local file that ffmpeg decodes as audio, within the duration cap. Raises :class:`InputError`."""
    info = probe(path)
    if info is None or not info.has_audio:
        raise InputError(f"{field}: the file is not audio that can be decoded")
    if info.duration_s > limits.max_audio_duration_s:
        raise InputError(f"{field}: the audio is {info.duration_s:.0f} s long; the limit is "
                         f"{limits.max_audio_duration_s:.0f} s")
    return path, info


KEEP_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def image_input(url: str, field: str, *, limits: Limits, workdir: Path) -> tuple[Path, tuple[int, int]]:
    """A downloaded image; returns (path, (width, height)).

    PNG, JPEG and WebP up to 2048 px a side pass through untouched; larger images
    are shrunk, and other formats re-encoded (PNG when there is transparency, else JPEG).
    """
    return check_image(download(url, field, limits=limits, kind="image", workdir=workdir), field, limits=limits,
                       workdir=workdir)


def check_image(path: Path, field: str, *, limits: Limits, workdir: Path) -> tuple[Path, tuple[int, int]]:
    """A local image file, judged from its header (pixel cap) and shrunk past 2048 px (see image_input)."""
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise InputError(f"{field}: the image is {width}x{height} ({width * height / 1e6:.0f} Mpx); "
                                 f"the limit is {limits.max_image_pixels / 1e6:.0f} Mpx")
            image.load()
            fmt = image.format or ""
            if max(image.size) <= MAX_IMAGE_SIDE and fmt in KEEP_FORMATS:
                kept = path.with_name(f"{field}{KEEP_FORMATS[fmt]}")
                path.rename(kept)
                return kept, image.size
            image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
            alpha = image.mode in ("RGBA", "LA", "P")
            out = workdir / f"{field}-input.{'png' if alpha else 'jpg'}"
            (image if alpha else image.convert("RGB")).save(out, "PNG" if alpha else "JPEG", quality=92)
            return out, image.size
    except Image.DecompressionBombError as err:  # Pillow's own cap, judged from the header too
        raise InputError(f"{field}: the image has too many pixels ({err})") from err
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{field}: the file is not an image that can be decoded") from err


def mono_wav(path: Path, *, rate: int = 24000) -> Path:
    """A mono WAV of the clip (CSM wants a mono reference)."""
    out = path.with_name(path.stem + "-mono.wav")
    _ffmpeg(["-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", str(out)], "reference audio")
    return out


def as_mp3(path: Path, info: MediaInfo) -> Path:
    """Video, m4a, aac, webm or ogg audio becomes MP3 (what the portrait graph loads)."""
    if path.suffix.lower() not in CONVERT_TO_MP3 and not info.has_video:
        return path
    out = path.with_name(path.stem + "-audio.mp3")
    _ffmpeg(["-i", str(path), "-vn", "-ac", "1", "-c:a", "libmp3lame", "-q:a", "4", str(out)], "audio_url")
    return out


def moov_first(path: Path) -> bool:
    """Whether an MP4's index (its moov box) comes before its media (mdat): players can start at once."""
    with path.open("rb") as handle:
        offset, size = 0, path.stat().st_size
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if length == 1:
                length = int.from_bytes(header[8:16], "big")
            if length < 8:
                return False
            offset += length
    return False


def faststart(path: Path) -> Path:
    """The MP4 with its index at the front (``-movflags +faststart``, streams copied), so a player starts
    playing before the whole file has arrived; the file itself when it already is."""
    if moov_first(path):
        return path
    target = path.with_name(f"{path.stem}.faststart{path.suffix}")
    try:
        _ffmpeg(["-i", str(path), "-map", "0", "-c", "copy", "-movflags", "+faststart", str(target)],
                "moving the video's index to the front")
        if not moov_first(target):
            raise InputError("moving the video's index to the front: ffmpeg's output has it at the back")
    except (InputError, subprocess.TimeoutExpired, OSError) as err:
        # it decodes (checked before): served as it is, only slower to start; never a failed job
        log.warning("%s", err)
        target.unlink(missing_ok=True)
        return path
    target.replace(path)
    return path


def fit_inside(width: int, height: int, box: tuple[int, int] = (1280, 720)) -> tuple[int, int]:
    """The largest even size with the same aspect that fits inside ``box``."""
    scale = min(box[0] / width, box[1] / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
