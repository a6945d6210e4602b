"""Job types are declared once (a spec) and everything follows: routes, URL checks, OpenAPI, engines.

The ``caption`` type exists only in the tests (tests/plugins/caption.py, loaded through
JOB_PLUGINS): adding it took one spec and one engine, on an existing node service.
"""
from __future__ import annotations

from collections.abc import Callable

import requests

from chalicelib.jobs import spec as jobspec
from devtools import servers
from tests.helpers import DEVNODE_KEY, Stack
from tests.media_fixtures import FileServer


def test_the_specs_declare_the_url_fields_the_api_checks() -> None:
    catalog = jobspec.load(["tests.plugins.caption"])
    assert catalog.names() == ["analyze", "csm", "portrait", "whisper", "caption"]
    inputs = {spec.name: {(f.name, f.media) for f in spec.input_fields} for spec in catalog}
    assert inputs == {"analyze": {("image_url", "image")}, "csm": {("reference_audio_url", "audio")},
                      "portrait": {("image_url", "image"), ("audio_url", "audio")},
                      "whisper": {("audio_url", "audio")}, "caption": {("image_url", "image")}}
    assert all("notify_url" in {f.name for f in spec.url_fields} for spec in catalog)
    assert jobspec.builtin().get("csm").defaults()["temperature"] == 0.9
    assert "caption" not in jobspec.builtin()


def test_a_job_type_from_a_spec_runs_end_to_end(make_stack: Callable[..., Stack], devnode: servers.Server,
                                                 inputs: FileServer, api_module: Stack) -> None:
    host = inputs.url("").split("//")[1].rstrip("/")
    stack = make_stack("redis", **{**servers.devnode_env(devnode, DEVNODE_KEY), "JOB_PLUGINS": "tests.plugins.caption",
                                   "ALLOW_PRIVATE_URLS": "false", "URL_ALLOW_HOSTS": host})
    stack.start_api()
    stack.start_worker()
    reply = stack.submit("caption", {"image_url": inputs.url("red.png"), "style": "title"})
    assert reply.status_code == 202, reply.text
    view = stack.wait_status(reply.json()["id"], {"success", "failed"}, timeout_s=60)
    assert view["status"] == "success" and view["node"] == f"127.0.0.1:{devnode.port}", view
    result = stack.http.get(f"{stack.url}/result/{view['id']}").json()
    assert result["style"] == "title" and "Red" in result["text"], result  # the devnode saw the red square
    # The spec's URL field is checked at submit like every other (the SSRF guard)...
    refused = stack.submit("caption", {"image_url": "http://169.254.169.254/latest/meta-data/"})
    assert refused.status_code == 400 and refused.json()["error"]["fields"][0]["field"] == "image_url"
    # ...its fields are validated and documented...
    bad = stack.submit("caption", {"image_url": inputs.url("red.png"), "style": "poem"})
    assert bad.status_code == 400 and bad.json()["error"]["fields"][0]["field"] == "style"
    doc = requests.get(f"{stack.url}/openapi.json", timeout=5).json()
    assert doc["paths"]["/caption"]["post"]["summary"].startswith("A one-line caption")
    assert doc["components"]["schemas"]["CaptionRequest"]["properties"]["style"]["enum"] == ["plain", "title", None]
    # ...and the production API, without the plugin, has no such route.
    assert api_module.submit("caption", {"image_url": inputs.url("red.png")}).status_code == 404
