"""File routes: uploads, voices and lasting result links."""
from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api.http import api_errors, caller, current_request, json_body, no_content, query, respond
from chalicelib.api.wiring import get_service

bp = Blueprint(__name__)


@bp.route("/uploads", methods=["POST"])
@api_errors
def upload_create() -> Response:
    """An upload: PUT the bytes to ``upload_url`` (straight to the bucket), then use ``url`` in a job."""
    who = caller()
    query()
    return respond(get_service().files.create_upload(json_body(current_request()), owner=who.principal.owner), 201,
                   who.headers)


@bp.route("/uploads/{upload_id}", methods=["GET"])
@api_errors
def upload_detail(upload_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().files.upload_view(upload_id, owner=who.principal.owner), headers=who.headers)


@bp.route("/voices", methods=["POST", "GET"])
@api_errors
def voices() -> Response:
    """POST: add a voice (its clip is copied to the bucket); GET: this key's voices."""
    who = caller()
    query()
    files = get_service().files
    if current_request().method == "POST":
        return respond(files.create_voice(json_body(current_request()), owner=who.principal.owner), 201, who.headers)
    return respond({"voices": [v.public() for v in files.voices.list(owner=who.principal.owner)]},
                   headers=who.headers)


@bp.route("/voices/{voice_id}", methods=["GET", "DELETE"])
@api_errors
def voice_detail(voice_id: str) -> Response:
    who = caller()
    query()
    files = get_service().files
    if current_request().method == "DELETE":
        files.delete_voice(voice_id, owner=who.principal.owner)
        return no_content(who.headers)
    return respond(files.voices.get(voice_id, owner=who.principal.owner).public(), headers=who.headers)


@bp.route("/files/{token}", methods=["GET"])
@api_errors
def file_link(token: str) -> Response:
    """A lasting result link (in webhooks, ``result_link``): a redirect to the file, signed now. No key
    needed: the link is the credential, until it expires (410)."""
    query()
    return Response(body="", status_code=302, headers={"Location": get_service().files.file_url(token),
                                                        "Cache-Control": "no-store"})
