"""The GPU pool and the service's state: ``/nodes``, ``/health``, ``/metrics``."""
from __future__ import annotations

import hmac

from chalice.app import Blueprint, Response

from chalicelib.api.http import api_errors, caller, current_request, query, respond
from chalicelib.api.wiring import get_service
from chalicelib.errors import Unauthorized
from chalicelib.ops.metrics import CONTENT_TYPE

bp = Blueprint(__name__)


@bp.route("/nodes", methods=["GET"])
@api_errors
def gpu_nodes() -> Response:
    who = caller()
    query()
    return respond(get_service().cluster.nodes(principal=who.principal), headers=who.headers)


@bp.route("/health", methods=["GET"])
@api_errors
def health() -> Response:
    query()
    report, healthy = get_service().cluster.health()
    return respond(report, 200 if healthy else 503)


@bp.route("/metrics", methods=["GET"])
@api_errors
def metrics() -> Response:
    """Prometheus exposition; wants ``Authorization: Bearer METRICS_TOKEN`` when one is set."""
    service = get_service()
    token = service.settings.metrics_token
    if token:
        sent = current_request().headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>")
    return Response(body=service.metrics.render().decode(), status_code=200,
                    headers={"Content-Type": CONTENT_TYPE})
