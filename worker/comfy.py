"""A ComfyUI HTTP API client and the SONIC portrait graph (PROTOCOLS.md §5)."""
from __future__ import annotations

import json
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests
import websocket

from chalicelib.errors import EngineError, NodeError
from worker.clients import node_http
from worker.context import JobContext
from worker.gpu.nodes import Node


def portrait_graph(*, image: str, audio: str, width: int, height: int, audio_seconds: float, job_id: str,
                   seed: int = 0) -> dict[str, Any]:
    """The SONIC talking-head graph in API format, node ids as ComfyUI's workflow has them."""
    return {
        "18": {"class_type": "LoadImage", "inputs": {"image": image}},
        "58": {"class_type": "ImageResize+", "inputs": {
            "image": ["18", 0], "width": width, "height": height, "interpolation": "nearest", "method": "stretch",
            "condition": "always", "multiple_of": 0}},
        "21": {"class_type": "PreviewImage", "inputs": {"images": ["58", 0]}},
        "26": {"class_type": "LoadAudio", "inputs": {"audio": audio, "audioUI": ""}},
        "32": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "svd_xt.safetensors"}},
        "34": {"class_type": "SONICTLoader", "inputs": {
            "model": ["32", 0], "sonic_unet": "unet.pth", "ip_audio_scale": 1, "use_interframe": True,
            "dtype": "bf16"}},
        "33": {"class_type": "SONIC_PreData", "inputs": {
            "clip_vision": ["32", 1], "vae": ["32", 2], "audio": ["26", 0], "image": ["58", 0],
            "weight_dtype": ["34", 1], "min_resolution": 576, "duration": math.ceil(audio_seconds) + 3,
            "expand_ratio": 1}},
        "31": {"class_type": "SONICSampler", "inputs": {
            "model": ["34", 0], "data_dict": ["33", 0], "seed": seed, "inference_steps": 25, "dynamic_scale": 1,
            "fps": 24}},
        "13": {"class_type": "VHS_VideoCombine", "inputs": {
            "images": ["31", 0], "audio": ["26", 0], "frame_rate": ["31", 1], "format": "video/h264-mp4",
            "pix_fmt": "yuv420p", "crf": 19, "trim_to_audio": True, "filename_prefix": f"Video_{job_id}",
            "save_output": True, "loop_count": 0, "pingpong": False, "save_metadata": True}},
    }


class ComfyClient:
    def __init__(self, node: Node, *, timeout_s: float = 30.0) -> None:
        self.node = node
        self.base = node.url("comfyui").rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers.update(node.headers())

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        def call() -> Any:
            reply = self.session.request(method, self.base + path, timeout=self.timeout_s, **kwargs)
            reply.raise_for_status()
            return reply.json() if reply.content else {}
        return node_http(self.node, call)

    def wait_ready(self, ctx: JobContext, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.session.get(self.base + "/system_stats", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise NodeError(f"ComfyUI on {self.node.name} was not ready within {timeout_s:.0f} s")
            ctx.sleep(0.5)

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            reply = self._json("POST", "/upload/image", files={"image": (path.name, handle)},
                               data={"overwrite": "true", "type": "input"})
        return str(reply["name"])

    def queue_prompt(self, graph: dict[str, Any], client_id: str) -> str:
        def call() -> Any:
            reply = self.session.post(self.base + "/prompt", json={"prompt": graph, "client_id": client_id},
                                      timeout=self.timeout_s)
            if reply.status_code == 400:
                raise EngineError(f"ComfyUI refused the portrait graph: {reply.text[:500]}")
            reply.raise_for_status()
            return reply.json()
        return str(node_http(self.node, call)["prompt_id"])

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        data = self._json("GET", f"/history/{prompt_id}")
        entry = data.get(prompt_id) if isinstance(data, dict) else None
        return entry if entry else None

    def cancel(self, prompt_id: str) -> None:
        """Stop our prompt: interrupt it if it is the one running, and drop it from the queue."""
        try:
            queue = self._json("GET", "/queue")
            running = [item[1] for item in queue.get("queue_running", [])]
            if prompt_id in running:
                self._json("POST", "/interrupt")
            self._json("POST", "/queue", json={"delete": [prompt_id]})
        except (NodeError, EngineError):
            pass  # best effort: the node may be gone

    def download(self, output: dict[str, Any], dest: Path) -> Path:
        params = {"filename": output["filename"], "subfolder": output.get("subfolder", ""),
                  "type": output.get("type", "output")}

        def call() -> bytes:
            reply = self.session.get(self.base + "/view", params=params, timeout=max(self.timeout_s, 120))
            reply.raise_for_status()
            return reply.content
        dest.write_bytes(node_http(self.node, call))
        return dest

    def follow_progress(self, client_id: str, prompt_id_box: dict[str, str], ctx: JobContext) -> threading.Thread:
        """Report ``progress`` messages from the websocket (best effort; history decides the end)."""
        url = self.base.replace("https://", "wss://").replace("http://", "ws://") + f"/ws?clientId={client_id}"

        def listen() -> None:
            try:
                ws = websocket.create_connection(url, timeout=5, header=[f"{k}: {v}" for k, v in
                                                                        self.node.headers().items()])
            except (OSError, websocket.WebSocketException):
                return
            try:
                while not ctx.stopped:
                    try:
                        raw = ws.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if not isinstance(raw, str):
                        continue
                    message = json.loads(raw)
                    data = message.get("data", {})
                    if data.get("prompt_id") not in (None, prompt_id_box.get("id")):
                        continue
                    if message.get("type") == "progress" and data.get("max"):
                        ctx.report(0.1 + 0.8 * data["value"] / data["max"])
                    elif message.get("type") in ("execution_success", "execution_error", "execution_interrupted"):
                        return
            except (OSError, websocket.WebSocketException, ValueError):
                return
            finally:
                ws.close()

        thread = threading.Thread(target=listen, daemon=True, name=f"comfy-ws-{client_id[:8]}")
        thread.start()
        return thread


def new_client_id() -> str:
    return str(uuid.uuid4())
