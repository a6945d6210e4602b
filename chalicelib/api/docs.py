"""The pages the API serves: the interactive documentation at ``/docs`` (Swagger UI from the
swagger-ui-bundle-v2 package) and the dashboard at ``/dashboard`` (static/dashboard/: plain HTML,
CSS and JavaScript, no build step).

Its script and styles are read from the installed package (nothing is fetched from a CDN, on a
laptop or on Lambda) and served by the API itself, under a Content-Security-Policy that lets the
page load scripts and styles from this origin only (app.py). The page starts Swagger UI with
``static/swagger-init.js`` (not an inline script, which that policy would block).
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import swagger_ui_bundle

STATIC = Path(__file__).parent / "static"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_SOURCE_MAP = re.compile(r"\n?/[/*]# sourceMappingURL=\S+(\s*\*/)?\s*$")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>C3 Render API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-init.js"></script>
</body>
</html>
"""


def docs_page() -> str:
    return PAGE


DASHBOARD = STATIC / "dashboard"
DASHBOARD_ASSETS = ("dashboard.js", "dashboard.css")


@cache
def dashboard_page() -> str:
    return (DASHBOARD / "index.html").read_text(encoding="utf-8")


@cache
def dashboard_asset(name: str) -> tuple[str, str]:
    """``(text, content type)`` of one of the dashboard's files (DASHBOARD_ASSETS)."""
    return (DASHBOARD / name).read_text(encoding="utf-8"), _TYPES[Path(name).suffix]


def page_csp(storage_origins: tuple[str, ...] = ()) -> str:
    """The pages' Content-Security-Policy: scripts and styles from this origin only (no inline script);
    media, images and uploads also from the bucket's origin (presigned result and upload URLs)."""
    storage = "".join(f" {origin}" for origin in storage_origins)
    return (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{storage}; "
            f"media-src 'self'{storage}; connect-src 'self'{storage}; font-src 'self' data:; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


@cache
def doc_asset(name: str) -> tuple[str, str]:
    """``(text, content type)`` of one of the page's files (chalicelib.api.openapi.DOC_ASSETS)."""
    source = STATIC / name if (STATIC / name).exists() else None
    if source is not None:
        text = source.read_text(encoding="utf-8")
    else:
        text = Path(str(swagger_ui_bundle.swagger_ui_path), name).read_text(encoding="utf-8")
    return _SOURCE_MAP.sub("\n", text), _TYPES[Path(name).suffix]
