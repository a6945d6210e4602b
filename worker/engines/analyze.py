"""analyze: image analysis by a vision model (Ollama ``/api/generate``, or OpenAI-compatible)."""
from __future__ import annotations

import base64
from typing import Any

import requests

from chalicelib.errors import EngineError
from chalicelib.jobs.models import Job
from chalicelib.jobs.spec import JobSpec
from worker.clients import node_http
from worker.context import JobContext
from worker.engines.base import Engine, Output
from worker.engines.deps import HTTP_TIMEOUT_S, EngineDeps
from worker.gpu.nodes import Node


class AnalyzeEngine(Engine):
    job_type = "analyze"

    def __init__(self, deps: EngineDeps, spec: JobSpec) -> None:
        super().__init__(deps, spec)
        self.session = requests.Session()

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        assert node is not None
        image = ctx.inputs["image_url"].path  # fetched and checked by the runner
        encoded = base64.b64encode(image.read_bytes()).decode()
        mime = {".png": "image/png", ".webp": "image/webp"}.get(image.suffix, "image/jpeg")
        ctx.check()
        model = job.params.get("model") or self.deps.analyze_model
        prompt = job.params.get("prompt") or self.deps.analyze_prompt
        timeout = max(1.0, min(HTTP_TIMEOUT_S, ctx.remaining_s()))
        with ctx.on_node():
            if self.deps.analyze_api == "openai":
                text = self._openai(node, model, prompt, encoded, mime, timeout)
            else:
                text = self._ollama(node, model, prompt, encoded, timeout)
        if not text.strip():
            raise EngineError("the vision model returned an empty answer")
        return Output(text=text.strip(), extra={"model": model})

    def _ollama(self, node: Node, model: str, prompt: str, image_b64: str, timeout: float) -> str:
        body = {"model": model, "prompt": prompt, "images": [image_b64], "stream": False}

        def call() -> dict[str, Any]:
            reply = self.session.post(node.url("ollama").rstrip("/") + "/api/generate", json=body,
                                      headers=node.headers(), timeout=timeout)
            reply.raise_for_status()
            return dict(reply.json())
        return str(node_http(node, call).get("response", ""))

    def _openai(self, node: Node, model: str, prompt: str, image_b64: str, mime: str, timeout: float) -> str:
        content = [{"type": "text", "text": prompt},
                   {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{image_b64}"}}]
        body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": False}
        headers = {"Authorization": f"Bearer {node.api_key}"} if node.api_key else {}

        def call() -> dict[str, Any]:
            reply = self.session.post(node.url("ollama").rstrip("/") + "/v1/chat/completions", json=body,
                                      headers=headers, timeout=timeout)
            reply.raise_for_status()
            return dict(reply.json())
        answer = node_http(node, call)
        try:
            return str(answer["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as err:
            raise EngineError("the vision model answered in an unknown shape") from err


ENGINE = AnalyzeEngine
