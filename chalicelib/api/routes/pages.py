"""What a browser reads: the root, the OpenAPI document, the docs (Swagger UI) and the dashboard."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from chalice.app import Blueprint, Response

from chalicelib import __version__
from chalicelib.api.docs import DASHBOARD_ASSETS, dashboard_asset, dashboard_page, doc_asset, docs_page, page_csp
from chalicelib.api.http import Headers, api_errors, query, respond
from chalicelib.api.openapi import DOC_ASSETS, DocContext, build_openapi
from chalicelib.api.wiring import get_service
from chalicelib.errors import NotFound, RenderError
from chalicelib.jobs.models import iso

bp = Blueprint(__name__)


@bp.route("/openapi.json", methods=["GET"])
@api_errors
def openapi() -> Response:
    query()
    return respond(_document())


_DOC: dict[str, Any] = {}


def _document() -> dict[str, Any]:
    """The OpenAPI document, rendered once per process (job types and limits do not change while it runs)."""
    if not _DOC:
        service = get_service()
        _DOC.update(build_openapi(__version__, DocContext.of(service.catalog, service.settings)))
    return _DOC


@bp.route("/", methods=["GET"])
@api_errors
def root() -> Response:
    """Public: the service is up, and where its documentation is (the first version's body, plus links)."""
    query()
    return respond({"status": "C3 Render API is running", "timestamp": iso(time.time()), "docs": "/docs",
                    "openapi": "/openapi.json"})


_DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'")


@bp.route("/docs", methods=["GET"])
@api_errors
def docs() -> Response:
    """Swagger UI, from the swagger-ui-bundle-v2 package's files, served here (no CDN), under a CSP."""
    query()
    return Response(body=docs_page(), status_code=200,
                    headers=_page_headers("text/html; charset=utf-8", cache="no-cache", csp=_DOCS_CSP))


@bp.route("/docs/{asset}", methods=["GET"])
@api_errors
def docs_asset(asset: str) -> Response:
    return _static_file(asset, DOC_ASSETS, doc_asset, "documentation", cache="public, max-age=86400", csp=_DOCS_CSP)


_STORAGE_ORIGINS: list[str] = []


def _storage_origins() -> tuple[str, ...]:
    """The origin of the bucket's presigned URLs (results to play, uploads to PUT), for the dashboard's CSP."""
    if not _STORAGE_ORIGINS:
        try:
            parts = urlsplit(get_service().storage.presign("dashboard-origin-probe"))
            _STORAGE_ORIGINS.append(f"{parts.scheme}://{parts.netloc}")
        except RenderError:
            return ()
    return tuple(_STORAGE_ORIGINS)


def _page_headers(content_type: str, *, cache: str, csp: str | None = None) -> Headers:
    """A page's or static file's headers: its CSP (the dashboard's by default), no sniffing, no referrer."""
    return {"Content-Type": content_type, "Content-Security-Policy": csp or page_csp(_storage_origins()),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": cache}


def _static_file(asset: str, known: Iterable[str], read: Callable[[str], tuple[str, str]], what: str, *,
                 cache: str, csp: str | None = None) -> Response:
    """One of a page's own files, by name from a fixed list (nothing else on disk is reachable)."""
    query()
    if asset not in known:
        raise NotFound(f"no {what} file {asset}")
    text, content_type = read(asset)
    return Response(body=text, status_code=200, headers=_page_headers(content_type, cache=cache, csp=csp))


@bp.route("/dashboard", methods=["GET"])
@api_errors
def dashboard() -> Response:
    """The dashboard (static files; it signs in with an API key and calls this API)."""
    query()
    return Response(body=dashboard_page(), status_code=200,
                    headers=_page_headers("text/html; charset=utf-8", cache="no-cache"))


@bp.route("/dashboard/{asset}", methods=["GET"])
@api_errors
def dashboard_file(asset: str) -> Response:
    return _static_file(asset, DASHBOARD_ASSETS, dashboard_asset, "dashboard", cache="no-cache")
