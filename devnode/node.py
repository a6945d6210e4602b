"""The media node: health, the Gradio apps, Ollama, and a log of what it was sent."""
from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from devnode import c3, speech, transcribe, vision

Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


def key_checker(api_key: str | None) -> Middleware:
    """Refuse requests without the node's key (``X-C3-API-KEY`` or ``Authorization: Bearer``)."""
    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if api_key:
            given = request.headers.get("x-c3-api-key", "")
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = given or auth[7:]
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return JSONResponse({"error": "invalid or missing X-C3-API-KEY"}, status_code=401)
        return await call_next(request)
    return check


def create_app(*, api_key: str | None = None, plane: c3.ControlPlane | None = None) -> FastAPI:
    app = FastAPI(title="C3 media node (devnode)")
    if plane is not None:
        app.include_router(c3.router(plane))
    calls: list[dict[str, Any]] = []

    def record(service: str, params: dict[str, Any]) -> None:
        calls.append({"service": service, "at": time.time(), **params})
        del calls[:-200]

    app.middleware("http")(key_checker(api_key))
    ready = {"models": False}

    @app.get("/")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok" if ready["models"] else "loading"}, status_code=200 if ready["models"]
                            else 503)

    @app.get("/_devnode/calls")
    def list_calls() -> list[dict[str, Any]]:
        return list(calls)

    def ollama(handler: Callable[[dict[str, Any]], dict[str, Any]], service: str) -> Callable[..., Any]:
        async def route(request: Request) -> JSONResponse:
            body = await request.json()
            started = time.monotonic()
            try:
                return JSONResponse(handler(body))
            except ValueError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            finally:
                record(service, {"model": body.get("model"), "prompt": body.get("prompt"),
                                 "duration_s": time.monotonic() - started})
        return route

    app.post("/api/generate")(ollama(vision.generate, "ollama.generate"))
    app.post("/api/chat")(ollama(vision.chat, "ollama.chat"))
    app.post("/v1/chat/completions")(ollama(vision.openai_chat, "openai.chat"))
    app = gr.mount_gradio_app(app, speech.build(record), path="/csm")
    app = gr.mount_gradio_app(app, transcribe.build(record), path="/whisper")

    def warm() -> None:
        speech.voice()
        transcribe.whisper_model()
        ready["models"] = True

    app.state.warm = warm
    return app
