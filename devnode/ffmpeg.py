"""ffmpeg from the imageio-ffmpeg package: decode, encode, probe."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


class MediaError(Exception):
    pass


@dataclass(frozen=True)
class Probe:
    duration_s: float
    audio_channels: int
    sample_rate: int
    has_video: bool
    width: int = 0
    height: int = 0
    video_codec: str = ""
    audio_codec: str = ""


def run(args: list[str], timeout_s: float = 300) -> None:
    done = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True,
                          timeout=timeout_s)
    if done.returncode != 0:
        raise MediaError(done.stderr.decode(errors="replace").strip()[-500:] or "ffmpeg failed")


def probe(path: str | Path) -> Probe:
    """What ffmpeg reads from the file's headers."""
    done = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, timeout=60)
    text = done.stderr.decode(errors="replace")
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    audio = re.search(r"Audio: (\w+).*?, (\d+) Hz, ([^,]+)", text)
    video = re.search(r"Video: (\w+).*?, (\d{2,5})x(\d{2,5})", text)
    if not duration and not audio and not video:
        raise MediaError("not a media file ffmpeg can read")
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    channels = 0
    if audio:
        layout = audio.group(3).strip()
        channels = {"mono": 1, "stereo": 2}.get(layout, int(re.match(r"\d+", layout).group(0))  # type: ignore[union-attr]
                                                if re.match(r"\d+", layout) else 2)
    return Probe(seconds, channels, int(audio.group(2)) if audio else 0, bool(video),
                 int(video.group(2)) if video else 0, int(video.group(3)) if video else 0,
                 video.group(1) if video else "", audio.group(1) if audio else "")


def to_wav(src: str | Path, dst: str | Path, *, rate: int = 16000) -> Path:
    run(["-i", str(src), "-vn", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", str(dst)])
    return Path(dst)


def to_mp3(src: str | Path, dst: str | Path) -> Path:
    run(["-i", str(src), "-vn", "-c:a", "libmp3lame", "-q:a", "4", str(dst)])
    return Path(dst)
