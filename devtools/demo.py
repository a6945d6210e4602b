"""``make demo``: submit one job of each type to the running ``make run`` stack and print the results.

The inputs are made here (a portrait and a red square, drawn with Pillow) and
put in the stack's object storage; the speech from the csm job is then
transcribed and made into a talking portrait.
"""
from __future__ import annotations

import io
import json
import sys
import time
from typing import Any

import boto3
import requests
from PIL import Image, ImageDraw

from devtools.servers import ROOT


def _image(kind: str) -> bytes:
    image = Image.new("RGB", (640, 480) if kind == "face" else (200, 200), "white")
    draw = ImageDraw.Draw(image)
    if kind == "face":
        draw.rectangle([0, 0, 640, 480], fill=(90, 120, 160))
        draw.ellipse([230, 120, 410, 360], fill=(230, 190, 160))
        draw.ellipse([275, 200, 300, 220], fill="black")
        draw.ellipse([340, 200, 365, 220], fill="black")
        draw.arc([280, 260, 360, 310], 0, 180, fill="black", width=5)
    else:
        draw.rectangle([50, 50, 149, 149], fill="red")
    out = io.BytesIO()
    image.save(out, "JPEG" if kind == "face" else "PNG")
    return out.getvalue()


def main() -> int:
    try:
        stack = json.loads((ROOT / ".run" / "stack.json").read_text())
    except OSError:
        print("start the stack first: make run", file=sys.stderr)
        return 1
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {stack['key']}"
    s3 = boto3.client("s3", endpoint_url=stack["s3"], region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    urls = {}
    for name, kind, ctype in (("demo/face.jpg", "face", "image/jpeg"), ("demo/red.png", "red", "image/png")):
        s3.put_object(Bucket="c3-render-results", Key=name, Body=_image(kind), ContentType=ctype)
        urls[kind] = s3.generate_presigned_url("get_object", Params={"Bucket": "c3-render-results", "Key": name},
                                               ExpiresIn=3600)

    def run(job_type: str, body: dict[str, Any]) -> dict[str, Any]:
        job = http.post(f"{stack['api']}/{job_type}", json=body, timeout=10).json()
        started = time.monotonic()
        while True:
            status = http.get(f"{stack['api']}/status/{job['id']}", timeout=10).json()
            if status["status"] not in ("queued", "running"):
                break
            time.sleep(0.3)
        result = dict(http.get(f"{stack['api']}/result/{job['id']}", timeout=10).json())
        shown = {k: v for k, v in result.items() if k not in ("segments", "files")}
        print(f"\n{job_type} ({time.monotonic() - started:.1f} s): {json.dumps(shown, indent=2)}")
        return result

    speech = run("csm", {"text": "Hello from the render service. This is a talking portrait demo."})
    run("whisper", {"audio_url": speech["result_url"]})
    run("portrait", {"image_url": urls["face"], "audio_url": speech["result_url"]})
    run("analyze", {"image_url": urls["red"], "prompt": "What is in this picture?"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
