"""The calling key and GPU usage: ``/me``, ``/me/webhook-secret``, ``/usage``."""
from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api.http import api_errors, caller, current_request, query, respond
from chalicelib.api.wiring import get_service

bp = Blueprint(__name__)


@bp.route("/usage", methods=["GET"])
@api_errors
def usage() -> Response:
    """GPU usage per UTC day, ``?from=&to=`` (dates; default today): the key's own (admins: every key's)."""
    who = caller()
    params = query()
    return respond(get_service().accounts.usage(principal=who.principal, date_from=params.get("from"),
                                       date_to=params.get("to")), headers=who.headers)


@bp.route("/me", methods=["GET"])
@api_errors
def me() -> Response:
    who = caller()
    query()
    return respond(get_service().accounts.me(who.principal), headers=who.headers)


@bp.route("/me/webhook-secret", methods=["GET", "POST"])
@api_errors
def my_webhook_secret() -> Response:
    """GET: the secret that signs this key's webhooks; POST: rotate it (the old one overlaps)."""
    who = caller()
    query()
    service = get_service()
    if current_request().method == "POST":
        return respond(service.accounts.rotate_webhook_secret(who.principal), headers=who.headers)
    return respond(service.accounts.webhook_secret(who.principal), headers=who.headers)
