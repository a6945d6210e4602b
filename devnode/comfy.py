"""ComfyUI stand-in: the HTTP API and websocket, running the SONIC portrait graph on the CPU.

The SONIC sampler becomes a slow zoom on the still image; Video Combine writes
a real H.264/yuv420p MP4 with the audio track, trimmed to the audio. Prompts
run one at a time; ``/interrupt`` stops the running one, ``/queue`` deletes
pending ones, and ``/ws`` streams the usual messages.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse

from devnode import ffmpeg

REQUIRED: dict[str, tuple[str, ...]] = {
    "LoadImage": ("image",),
    "ImageResize+": ("image", "width", "height", "interpolation", "method", "condition", "multiple_of"),
    "PreviewImage": ("images",),
    "LoadAudio": ("audio",),
    "ImageOnlyCheckpointLoader": ("ckpt_name",),
    "SONICTLoader": ("model", "sonic_unet", "ip_audio_scale", "use_interframe", "dtype"),
    "SONIC_PreData": ("clip_vision", "vae", "audio", "image", "weight_dtype", "min_resolution", "duration",
                      "expand_ratio"),
    "SONICSampler": ("model", "data_dict", "seed", "inference_steps", "dynamic_scale", "fps"),
    "VHS_VideoCombine": ("images", "audio", "frame_rate", "format", "pix_fmt", "crf", "trim_to_audio",
                         "filename_prefix", "save_output"),
}


class Interrupted(Exception):
    pass


def validate(graph: Any, input_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """ComfyUI's checks: returns (error, node_errors); (None, {}) when the graph can run."""
    if not isinstance(graph, dict) or not graph:
        return {"type": "invalid_prompt", "message": "Prompt has no nodes", "details": ""}, {}
    node_errors: dict[str, Any] = {}
    for node_id, node in graph.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if class_type not in REQUIRED:
            return {"type": "invalid_prompt", "message": f"Cannot execute because node {class_type} does not exist.",
                    "details": f"Node ID '#{node_id}'"}, {}
        errors = []
        inputs = node.get("inputs", {})
        for name in REQUIRED[class_type]:
            value = inputs.get(name)
            if value is None:
                errors.append({"type": "required_input_missing", "message": "Required input is missing",
                               "details": name})
            elif isinstance(value, list) and (len(value) != 2 or str(value[0]) not in graph):
                errors.append({"type": "bad_linked_input", "message": "Bad linked input", "details": name})
        if class_type in ("LoadImage", "LoadAudio"):
            name = inputs.get("image" if class_type == "LoadImage" else "audio")
            if isinstance(name, str) and not (input_dir / name).is_file():
                errors.append({"type": "value_not_in_list", "message": f"Invalid file: {name}", "details": name})
        if errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": class_type}
    if node_errors:
        return {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                "details": ""}, node_errors
    return None, {}


def _node(graph: dict[str, Any], class_type: str) -> dict[str, Any]:
    return next(n["inputs"] for n in graph.values() if n["class_type"] == class_type)


class Comfy:
    def __init__(self, *, render_delay_s: float = 0.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="comfy-"))
        self.input_dir = self.root / "input"
        self.output_dir = self.root / "output"
        self.input_dir.mkdir()
        self.output_dir.mkdir()
        self.render_delay_s = render_delay_s
        self.pending: list[tuple[int, str, dict[str, Any], str]] = []
        self.running: tuple[int, str, dict[str, Any], str] | None = None
        self.history: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.number = 0
        self.lock = threading.Condition()
        self.interrupt = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sockets: dict[str, set[WebSocket]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=self._work, daemon=True, name="comfy-executor").start()

    # -- websocket fan-out --------------------------------------------------------

    def send(self, client_id: str, message: dict[str, Any]) -> None:
        if self.loop is None:
            return
        for ws in list(self.sockets.get(client_id, ())):
            asyncio.run_coroutine_threadsafe(ws.send_json(message), self.loop)

    # -- queue --------------------------------------------------------------------

    def enqueue(self, graph: dict[str, Any], client_id: str) -> tuple[str, int]:
        with self.lock:
            prompt_id = str(uuid.uuid4())
            number = self.number
            self.number += 1
            self.pending.append((number, prompt_id, graph, client_id))
            self.lock.notify_all()
        return prompt_id, number

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.pending:
                    self.lock.wait()
                item = self.pending.pop(0)
                self.running = item
                self.interrupt.clear()
            number, prompt_id, graph, client_id = item
            started = time.time()
            self.send(client_id, {"type": "execution_start", "data": {"prompt_id": prompt_id}})
            try:
                outputs = self._render(prompt_id, graph, client_id)
                status = {"status_str": "success", "completed": True,
                          "messages": [["execution_success", {"prompt_id": prompt_id}]]}
                self.send(client_id, {"type": "executed", "data": {"node": "13", "output": outputs["13"],
                                                                   "prompt_id": prompt_id}})
                self.send(client_id, {"type": "execution_success", "data": {"prompt_id": prompt_id}})
            except Interrupted:
                outputs = {}
                status = {"status_str": "error", "completed": False,
                          "messages": [["execution_interrupted", {"prompt_id": prompt_id, "node_id": "31"}]]}
                self.send(client_id, {"type": "execution_interrupted", "data": {"prompt_id": prompt_id}})
            except Exception as err:  # noqa: BLE001 - reported through the protocol, as ComfyUI does
                outputs = {}
                status = {"status_str": "error", "completed": False, "messages": [["execution_error", {
                    "prompt_id": prompt_id, "node_id": "13", "exception_message": str(err)}]]}
                self.send(client_id, {"type": "execution_error", "data": {"prompt_id": prompt_id,
                                                                           "exception_message": str(err)}})
            with self.lock:
                self.events.append({"event": "rendered", "prompt_id": prompt_id, "duration_s": time.time() - started})
                self.history[prompt_id] = {"prompt": [number, prompt_id, graph, {}, ["13"]], "outputs": outputs,
                                           "status": status, "meta": {"duration_s": time.time() - started}}
                self.running = None
            self.send(client_id, {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}})

    def _render(self, prompt_id: str, graph: dict[str, Any], client_id: str) -> dict[str, Any]:
        image = self.input_dir / _node(graph, "LoadImage")["image"]
        audio = self.input_dir / _node(graph, "LoadAudio")["audio"]
        resize = _node(graph, "ImageResize+")
        width, height = int(resize["width"]) // 2 * 2, int(resize["height"]) // 2 * 2
        fps = int(_node(graph, "SONICSampler")["fps"])
        combine = _node(graph, "VHS_VideoCombine")
        sound = ffmpeg.probe(audio)
        planned = float(_node(graph, "SONIC_PreData")["duration"])
        duration = sound.duration_s if combine.get("trim_to_audio") else planned
        total = max(1, int(duration * fps))
        out = self.output_dir / f"{combine['filename_prefix']}_00001.mp4"
        zoom = f"(1+0.12*t/{max(duration, 0.1):.3f})"
        video_filter = (f"scale={width}:{height},scale=w='trunc({width}*{zoom}/2)*2':h='trunc({height}*{zoom}/2)*2'"
                        f":eval=frame,crop={width}:{height},scale=out_range=tv,format=yuv420p")
        args = [ffmpeg.FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-framerate", str(fps),
                "-i", str(image), "-i", str(audio), "-vf", video_filter, "-map", "0:v", "-map", "1:a",
                "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(combine.get("crf", 19)),
                "-pix_fmt", "yuv420p", "-color_range", "tv", "-c:a", "aac", "-t", f"{duration:.3f}",
                "-progress", "pipe:1", str(out)]
        self.send(client_id, {"type": "executing", "data": {"node": "31", "prompt_id": prompt_id}})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        per_frame_delay = self.render_delay_s / total
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            found = re.match(rb"frame=(\d+)", raw)
            if found:
                self.send(client_id, {"type": "progress", "data": {"value": min(int(found.group(1)), total),
                                                                   "max": total, "prompt_id": prompt_id,
                                                                   "node": "31"}})
            if per_frame_delay and found:
                self.interrupt.wait(per_frame_delay * 10)  # ffmpeg reports about every tenth frame
            if self.interrupt.is_set():
                self.proc.kill()
                self.proc.wait()
                raise Interrupted()
        code = self.proc.wait()
        if self.interrupt.is_set():
            raise Interrupted()
        if code != 0:
            raise RuntimeError((self.proc.stderr.read() if self.proc.stderr else b"").decode()[-300:])
        fmt = combine.get("format", "video/h264-mp4")
        return {"13": {"gifs": [{"filename": out.name, "subfolder": "", "type": "output", "format": fmt,
                                 "frame_rate": fps, "fullpath": str(out)}]}}

    def do_interrupt(self) -> None:
        with self.lock:
            running = self.running[1] if self.running else None
            self.events.append({"event": "interrupt", "running": running, "at": time.time()})
            self.interrupt.set()
            if self.proc and self.proc.poll() is None:
                self.proc.kill()

    def delete(self, prompt_ids: list[str]) -> None:
        with self.lock:
            self.events.append({"event": "delete", "prompt_ids": prompt_ids, "at": time.time()})
            self.pending = [p for p in self.pending if p[1] not in prompt_ids]


def create_app(*, render_delay_s: float = 0.0, check_key: Any = None) -> FastAPI:
    comfy = Comfy(render_delay_s=render_delay_s)
    app = FastAPI(title="ComfyUI (devnode)")
    app.state.comfy = comfy
    if check_key is not None:
        app.middleware("http")(check_key)

    @app.on_event("startup")
    async def remember_loop() -> None:
        comfy.loop = asyncio.get_running_loop()

    @app.get("/system_stats")
    def system_stats() -> dict[str, Any]:
        return {"system": {"os": "posix", "comfyui_version": "devnode", "python_version": "3.11"},
                "devices": [{"name": "cpu", "type": "cpu", "vram_total": 0, "vram_free": 0}]}

    _file_routes(app, comfy)
    _queue_routes(app, comfy)
    _devnode_routes(app, comfy)
    return app


def _file_routes(app: FastAPI, comfy: Comfy) -> None:
    @app.post("/upload/image")
    async def upload(image: Annotated[UploadFile, File()], overwrite: Annotated[str, Form()] = "false",
                     type: Annotated[str, Form()] = "input",
                     subfolder: Annotated[str, Form()] = "") -> dict[str, str]:
        name = Path(image.filename or "upload").name
        target = comfy.input_dir / name
        if target.exists() and overwrite.lower() != "true":
            stem, suffix, n = target.stem, target.suffix, 1
            while target.exists():
                target = comfy.input_dir / f"{stem} ({n}){suffix}"
                n += 1
        with target.open("wb") as out:
            shutil.copyfileobj(image.file, out)
        return {"name": target.name, "subfolder": "", "type": "input"}

    @app.get("/view")
    def view(filename: str, subfolder: str = "", type: str = "output") -> FileResponse:
        folder = comfy.output_dir if type == "output" else comfy.input_dir
        path = (folder / Path(filename).name)
        if not path.is_file():
            raise HTTPException(404, "file not found")
        return FileResponse(path)


def _queue_routes(app: FastAPI, comfy: Comfy) -> None:
    @app.post("/prompt")
    async def prompt(request: Request) -> JSONResponse:
        body = await request.json()
        error, node_errors = validate(body.get("prompt"), comfy.input_dir)
        if error:
            return JSONResponse({"error": error, "node_errors": node_errors}, status_code=400)
        prompt_id, number = comfy.enqueue(body["prompt"], str(body.get("client_id", "")))
        return JSONResponse({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    @app.get("/history/{prompt_id}")
    def history(prompt_id: str) -> dict[str, Any]:
        with comfy.lock:
            entry = comfy.history.get(prompt_id)
        return {prompt_id: entry} if entry else {}

    @app.get("/queue")
    def queue() -> dict[str, Any]:
        with comfy.lock:
            running = [[r[0], r[1], r[2], {}, ["13"]] for r in ([comfy.running] if comfy.running else [])]
            pending = [[p[0], p[1], p[2], {}, ["13"]] for p in comfy.pending]
        return {"queue_running": running, "queue_pending": pending}

    @app.post("/queue")
    async def edit_queue(request: Request) -> dict[str, Any]:
        body = await request.json()
        if body.get("delete"):
            comfy.delete([str(x) for x in body["delete"]])
        return {}

    @app.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        comfy.do_interrupt()
        return {}

    @app.websocket("/ws")
    async def ws(socket: WebSocket, clientId: str = "") -> None:  # noqa: N803 - ComfyUI's parameter name
        await socket.accept()
        comfy.sockets.setdefault(clientId, set()).add(socket)
        await socket.send_json({"type": "status", "data": {"status": {"exec_info": {
            "queue_remaining": len(comfy.pending) + (1 if comfy.running else 0)}}, "sid": clientId}})
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            comfy.sockets.get(clientId, set()).discard(socket)


def _devnode_routes(app: FastAPI, comfy: Comfy) -> None:
    """Test hooks: what happened, and a render delay that can be changed while running."""
    @app.get("/_devnode/events")
    def events() -> list[dict[str, Any]]:
        return list(comfy.events)

    @app.post("/_devnode/config")
    async def config(request: Request) -> dict[str, Any]:
        body = await request.json()
        if "render_delay_s" in body:
            comfy.render_delay_s = float(body["render_delay_s"])
        return {"render_delay_s": comfy.render_delay_s}
