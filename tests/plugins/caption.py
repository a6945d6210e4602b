"""caption: a test-only job type, declared the way a new job type is (docs/architecture.md, "Adding a job type").

One spec (its request fields, input, output and node service) and one engine. It runs on an
existing node service (Ollama), so nothing else changes: loaded with ``JOB_PLUGINS=tests.plugins.caption``,
the API routes ``POST /caption``, checks its URL field, documents it in OpenAPI, and the worker
leases a node, fetches the input, calls the node and stores the text.
"""
from __future__ import annotations

import base64

import requests

from chalicelib.errors import EngineError
from chalicelib.jobs.models import Job
from chalicelib.jobs.schemas import Field
from chalicelib.jobs.spec import JobSpec
from worker.clients import node_http
from worker.context import JobContext
from worker.engines.base import Engine, Output
from worker.gpu.nodes import Node

SPEC = JobSpec(
    name="caption",
    summary="A one-line caption for an image (test-only job type)",
    output="text",
    service="ollama",
    example={"image_url": "https://media.example.com/photo.png"},
    fields=(
        Field("image_url", "url", "Image to caption.", required=True, media="image"),
        Field("style", "enum", "How the caption reads.", default="plain", choices=("plain", "title")),
    ),
)


class CaptionEngine(Engine):
    job_type = "caption"

    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        assert node is not None
        image = ctx.inputs["image_url"].path  # fetched and checked by the runner, like every declared input
        body = {"model": self.deps.analyze_model, "prompt": "Write a one-line caption for this image.",
                "images": [base64.b64encode(image.read_bytes()).decode()], "stream": False}

        def call() -> dict[str, str]:
            reply = requests.post(node.url("ollama").rstrip("/") + "/api/generate", json=body,
                                  headers=node.headers(), timeout=30)
            reply.raise_for_status()
            return dict(reply.json())
        with ctx.on_node():
            text = node_http(node, call).get("response", "").strip().split("\n")[0]
        if not text:
            raise EngineError("the vision model returned no caption")
        style = job.params["style"]
        return Output(text=text.title() if style == "title" else text, extra={"style": style})


ENGINE = CaptionEngine
