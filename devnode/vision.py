"""Ollama stand-in: a real, small CPU analysis of the image instead of a vision model."""
from __future__ import annotations

import base64
import io
import time
from typing import Any

import cv2
import numpy as np
from PIL import Image

PALETTE = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "red": (220, 30, 30),
    "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (235, 220, 50), "orange": (240, 140, 30),
    "purple": (130, 50, 160), "pink": (240, 150, 190), "brown": (120, 75, 40), "cyan": (60, 200, 220),
}
_NAMES = list(PALETTE)
_RGB = np.array([PALETTE[n] for n in _NAMES], dtype=np.float32)


def _faces(rgb: np.ndarray) -> int:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    return len(found)


def analyse(data: bytes) -> dict[str, Any]:
    """Size, format, dominant colours, brightness and faces of an encoded image."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # noqa: BLE001 - any decoder failure means "not an image"
        raise ValueError(f"could not decode the image: {err}") from err
    fmt = image.format or "unknown"
    rgb = np.asarray(image.convert("RGB"))
    small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float32)
    nearest = np.argmin(((small[:, None, :] - _RGB[None, :, :]) ** 2).sum(axis=2), axis=1)
    counts = np.bincount(nearest, minlength=len(_NAMES)) / len(nearest)
    colours = [(str(_NAMES[i]), round(float(counts[i]) * 100)) for i in np.argsort(-counts) if counts[i] >= 0.05]
    brightness = float(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 2].mean()) / 255
    return {"width": image.width, "height": image.height, "format": fmt, "mode": image.mode, "colours": colours,
            "brightness": round(brightness, 2), "faces": _faces(rgb)}


def describe(facts: dict[str, Any], prompt: str) -> str:
    level = "bright" if facts["brightness"] > 0.66 else "dark" if facts["brightness"] < 0.33 else "medium"
    colours = ", ".join(f"{name} ({share}%)" for name, share in facts["colours"]) or "none dominant"
    faces = facts["faces"]
    face_text = "No faces were found." if faces == 0 else f"{faces} face{'s' if faces > 1 else ''} found."
    text = (f"The image is a {facts['width']}x{facts['height']} {facts['format']} image ({facts['mode']}). "
            f"Dominant colours: {colours}. Overall brightness: {level} ({facts['brightness']:.2f}). {face_text}")
    if prompt:
        text += f" (Asked: {prompt.strip()[:200]})"
    return text


def _first_image(images: list[str] | None) -> bytes:
    if not images:
        raise ValueError("no image was sent")
    raw = images[0]
    if raw.startswith("data:"):
        raw = raw.split(",", 1)[1]
    return base64.b64decode(raw)


def generate(body: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic_ns()
    text = describe(analyse(_first_image(body.get("images"))), str(body.get("prompt", "")))
    return {"model": body.get("model", ""), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "response": text, "done": True, "done_reason": "stop",
            "total_duration": time.monotonic_ns() - started}


def chat(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or []
    last = next((m for m in reversed(messages) if m.get("images")), messages[-1] if messages else {})
    text = describe(analyse(_first_image(last.get("images"))), str(last.get("content", "")))
    return {"model": body.get("model", ""), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": {"role": "assistant", "content": text}, "done": True, "done_reason": "stop"}


def openai_chat(body: dict[str, Any]) -> dict[str, Any]:
    prompt, images = "", []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            prompt = content
            continue
        for part in content or []:
            if part.get("type") == "text":
                prompt = part.get("text", "")
            elif part.get("type") == "image_url":
                images.append(part["image_url"]["url"])
    text = describe(analyse(_first_image(images)), prompt)
    return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": len(text.split())}}
