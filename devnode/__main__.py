"""``python -m devnode``: a CPU media node on localhost, and a Comput3 control plane.

    python -m devnode [--port 7860] [--comfy-port 8188] [--api-key KEY] [--render-delay 0] [--launch-delay 0.5]

The node answers ``/`` with 200 once its models are loaded. The Comput3 API is at
``/api/v0`` on the same port; a node it launches is reached at ``/n/<node>/...``
on both ports.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import uvicorn  # noqa: E402 - gradio reads the variable above at import

from devnode import c3, comfy, node  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(prog="devnode")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860, help="media node: health, /csm/, /whisper/, Ollama")
    parser.add_argument("--comfy-port", type=int, default=8188, help="ComfyUI API")
    parser.add_argument("--api-key", default=os.environ.get("DEVNODE_API_KEY") or None,
                        help="require this X-C3-API-KEY (default: $DEVNODE_API_KEY; none: open)")
    parser.add_argument("--render-delay", type=float, default=float(os.environ.get("DEVNODE_RENDER_DELAY_S", "0")),
                        help="extra seconds each portrait render takes (for cancel tests)")
    parser.add_argument("--launch-delay", type=float, default=float(os.environ.get("DEVNODE_LAUNCH_DELAY_S", "0.5")),
                        help="seconds a launched Comput3 node takes to become ready")
    args = parser.parse_args()
    plane = c3.ControlPlane()
    plane.launch_delay_s = args.launch_delay
    media = node.create_app(api_key=args.api_key, plane=plane)
    ui = comfy.create_app(render_delay_s=args.render_delay, check_key=node.key_checker(args.api_key))
    threading.Thread(target=media.state.warm, daemon=True).start()
    servers = [uvicorn.Server(uvicorn.Config(c3.NodeRouter(media, plane), host=args.host, port=args.port,
                                             log_level="warning")),
               uvicorn.Server(uvicorn.Config(c3.NodeRouter(ui, plane), host=args.host, port=args.comfy_port,
                                             log_level="warning", ws="websockets-sansio"))]
    print(f"devnode: media node http://{args.host}:{args.port}  comfyui http://{args.host}:{args.comfy_port}",
          flush=True)

    async def serve() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(serve())


if __name__ == "__main__":
    main()
