"""Inputs made here: images, a stereo speech clip, a text file; served over HTTP."""
from __future__ import annotations

import re
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageDraw

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def red_square(path: Path, size: int = 200) -> Path:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).rectangle([size // 4, size // 4, size * 3 // 4 - 1, size * 3 // 4 - 1], fill="red")
    image.save(path, "PNG")
    return path


def portrait(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    image = Image.new("RGB", size, (90, 120, 160))
    draw = ImageDraw.Draw(image)
    cx, cy = size[0] // 2, size[1] // 2
    draw.ellipse([cx - 90, cy - 120, cx + 90, cy + 120], fill=(230, 190, 160))
    draw.ellipse([cx - 45, cy - 40, cx - 20, cy - 20], fill="black")
    draw.ellipse([cx + 20, cy - 40, cx + 45, cy - 20], fill="black")
    draw.arc([cx - 40, cy + 20, cx + 40, cy + 70], 0, 180, fill="black", width=5)
    image.save(path, "JPEG")
    return path


def stereo_tone(path: Path, seconds: float = 2.0) -> Path:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=660:duration={seconds}", "-filter_complex", "[0:a][1:a]amerge=inputs=2",
                    "-ac", "2", str(path)], check=True)
    return path


def probe(path: Path) -> dict[str, object]:
    text = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    video = re.search(r"Video: (\w+).*?(yuv\w+).*?, (\d+)x(\d+)", text)
    audio = re.search(r"Audio: (\w+)", text)
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    return {"duration": seconds, "video_codec": video.group(1) if video else None,
            "pix_fmt": video.group(2) if video else None, "width": int(video.group(3)) if video else 0,
            "height": int(video.group(4)) if video else 0, "audio_codec": audio.group(1) if audio else None}


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)] / max(1, len(ref))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        return None


class FileServer:
    """Serves a folder over HTTP on loopback, for input URLs."""

    def __init__(self, root: Path) -> None:
        handler = partial(_QuietHandler, directory=str(root))
        self.root = root
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
