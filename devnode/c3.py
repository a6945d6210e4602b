"""Comput3 control-plane stand-in (``/api/v0``): launch, workloads, stop, types, balance.

Launched nodes route to this devnode's own media services through a path
prefix, ``/n/<node>/...``: a node answers health only after the launch delay,
and once stopped, expired or killed its services answer 502, as a dead node
would. Test hooks under ``/api/v0/_devnode`` set the launch delay, queue
injected launch failures (an HTML 502 page, a timeout) and stop failures, and kill a node.
"""
from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

WORDS = ["firmly", "widely", "proud", "quietly", "bright", "gently", "rapid", "calm", "bold", "lucky", "swift"]
TYPES = ["media:fast", "ollama_webui:fast", "ollama_webui:coder", "ollama_webui:large"]


@dataclass
class Workload:
    workload: str
    node: str
    type: str
    created: float
    expires: float
    ready_at: float
    status: str = "running"  # running | stopped | expired | dead
    stopped: float | None = None

    @property
    def alive(self) -> bool:
        """Answers on its services."""
        return self.status == "running" and time.time() < self.expires

    @property
    def allocated(self) -> bool:
        """Listed as running and billed: alive, or dead but not yet stopped (a broken node still costs)."""
        return self.status in ("running", "dead") and time.time() < self.expires

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("ready_at")
        data["status"] = "running" if self.allocated else ("expired" if self.status == "running" else self.status)
        data["running"] = self.allocated
        data["created"] = int(self.created)
        data["expires"] = int(self.expires)
        return data


class ControlPlane:
    def __init__(self) -> None:
        self.workloads: dict[str, Workload] = {}
        self.lock = threading.Lock()
        self.launch_delay_s = 0.5
        self.faults: list[dict[str, Any]] = []  # injected into the next launches
        self.stop_faults: list[dict[str, Any]] = []  # injected into the next stops
        self.launches = 0
        self.stops = 0
        self.stop_calls = 0  # every /stop call, refused ones included
        self.balance = 100.0

    def by_node(self, node: str) -> Workload | None:
        with self.lock:
            return next((w for w in self.workloads.values() if w.node == node), None)

    def launch(self, kind: str, expires: float) -> Workload:
        name = f"{'-'.join(secrets.choice(WORDS) for _ in range(3))}-{secrets.token_hex(2)}-gpu.comput3.ai"
        now = time.time()
        workload = Workload(str(uuid.uuid4()), name, kind, now, expires, now + self.launch_delay_s)
        with self.lock:
            self.workloads[workload.workload] = workload
            self.launches += 1
        return workload


def router(plane: ControlPlane) -> APIRouter:
    api = APIRouter(prefix="/api/v0")
    _public_routes(api, plane)
    _hook_routes(api, plane)
    return api


async def _injected(faults: list[dict[str, Any]]) -> Response | None:
    """The next injected fault: an HTML 502 page (as Cloudflare sends), or a delay before answering."""
    fault = faults.pop(0) if faults else None
    if fault and fault.get("kind") == "html502":
        return HTMLResponse("<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
                            status_code=502)
    if fault and fault.get("kind") == "timeout":
        await asyncio.sleep(float(fault.get("seconds", 30)))
    return None


def _public_routes(api: APIRouter, plane: ControlPlane) -> None:
    @api.post("/launch")
    async def launch(request: Request) -> Any:
        body = await request.json()
        if (refused := await _injected(plane.faults)) is not None:
            return refused
        kind = str(body.get("type", ""))
        expires = body.get("expires")
        if kind not in TYPES or not isinstance(expires, (int, float)) or expires <= time.time():
            return JSONResponse({"error": "type must be a known type and expires a future unix time"}, 400)
        workload = plane.launch(kind, float(expires))
        return {"node": workload.node, "workload": workload.workload, "workload_key": secrets.token_hex(8)}

    @api.post("/workloads")
    async def workloads(request: Request) -> list[dict[str, Any]]:
        body = await request.json() if await request.body() else {}
        with plane.lock:
            items = [w.public() for w in plane.workloads.values()]
        return [w for w in items if w["running"]] if body.get("running") else items

    @api.post("/stop")
    async def stop(request: Request) -> Any:
        body = await request.json()
        plane.stop_calls += 1
        if (refused := await _injected(plane.stop_faults)) is not None:
            return refused
        with plane.lock:
            workload = plane.workloads.get(str(body.get("workload")))
            if workload is None:
                return JSONResponse({"error": "no such workload"}, 404)
            if workload.status in ("running", "dead"):
                workload.status, workload.stopped = "stopped", time.time()
                plane.stops += 1
        return {"stopped": int(workload.stopped or time.time()), "refund_amount": 0.0}

    @api.get("/types")
    def types() -> list[str]:
        return TYPES

    @api.get("/balance")
    def balance() -> dict[str, float]:
        return {"balance": plane.balance}

    @api.get("/profile")
    def profile() -> dict[str, str]:
        return {"user": "devnode", "email": "devnode@localhost"}


def _hook_routes(api: APIRouter, plane: ControlPlane) -> None:
    @api.post("/_devnode/config")
    async def config(request: Request) -> dict[str, Any]:
        body = await request.json()
        if "launch_delay_s" in body:
            plane.launch_delay_s = float(body["launch_delay_s"])
        if "faults" in body:
            plane.faults = list(body["faults"])
        if "stop_faults" in body:
            plane.stop_faults = list(body["stop_faults"])
        return {"launch_delay_s": plane.launch_delay_s, "faults": plane.faults, "stop_faults": plane.stop_faults}

    @api.post("/_devnode/kill")
    async def kill(request: Request) -> dict[str, Any]:
        body = await request.json()
        with plane.lock:
            for workload in plane.workloads.values():
                if body.get("node") in (workload.node, workload.workload):
                    workload.status = "dead"  # billed until someone stops it
        return {"ok": True}

    @api.get("/_devnode/stats")
    def stats() -> dict[str, Any]:
        with plane.lock:
            return {"launches": plane.launches, "stops": plane.stops, "stop_calls": plane.stop_calls,
                    "running": [w.public() for w in plane.workloads.values() if w.allocated],
                    # exact times, for billing figures: a node is billed from launch until it stops or dies
                    "billing": [{"workload": w.workload, "created": w.created,
                                 "ended": w.stopped if w.status == "stopped" else (
                                     None if w.allocated else min(w.expires, time.time()))}
                                for w in plane.workloads.values()]}


class NodeRouter:
    """ASGI middleware: ``/n/<node>/rest`` reaches ``/rest`` if that node is up, else 502."""

    def __init__(self, app: ASGIApp, plane: ControlPlane) -> None:
        self.app = app
        self.plane = plane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or not path.startswith("/n/"):
            await self.app(scope, receive, send)
            return
        node, _, rest = path[3:].partition("/")
        workload = self.plane.by_node(node)
        if workload is None or not workload.alive:
            if scope["type"] == "http":
                await JSONResponse({"error": f"node {node} is not running"}, 502)(scope, receive, send)
            return
        if time.time() < workload.ready_at and rest in ("", "/"):
            await JSONResponse({"status": "starting"}, 503)(scope, receive, send)
            return
        inner = dict(scope)
        inner["path"] = "/" + rest
        inner["raw_path"] = inner["path"].encode()
        await self.app(inner, receive, send)
