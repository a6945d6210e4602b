"""Job routes: ``POST /<type>`` for each job type, and everything under ``/jobs``, ``/status``, ``/result``."""
from __future__ import annotations

import re
from collections.abc import Callable

from chalice.app import Blueprint, Chalice, Response

from chalicelib.api.compat import V1
from chalicelib.api.http import (
    api_errors,
    caller,
    current_request,
    json_body,
    no_content,
    preferred_wait,
    query,
    rate_headers,
    respond,
    wait_seconds,
)
from chalicelib.api.wiring import get_service
from chalicelib.errors import BadRequest, FieldProblem, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationError
from chalicelib.jobs.spec import Catalog, JobSpec

bp = Blueprint(__name__)


def _submit(job_type: str) -> Response:
    request = current_request()
    service = get_service()
    who = caller(charge=False)  # an accepted submit is charged inside the atomic admission step...
    try:
        query()
        body = json_body(request)
        view, created, rate = service.jobs.submit(job_type, body, principal=who.principal,
                                                  idempotency_key=request.headers.get("idempotency-key"))
    except (ValidationError, BadRequest, PayloadTooLarge, UnsupportedMediaType):
        service.callers.charge(who.principal)  # ...and a refused one here: a broken client is slowed down too
        raise
    headers = {"Location": view["links"]["status"], **rate_headers(rate)}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    wait_s = preferred_wait(request.headers)
    if wait_s:
        headers["Preference-Applied"] = f"wait={wait_s}"
        view, ended = service.jobs.wait_for_result(view["id"], principal=who.principal, wait_s=wait_s)
        if ended:
            return respond(view, 200, headers)
    return respond(view, 202 if created and who.principal.compat != V1 else 200, headers)


def add_job_routes(app: Chalice, catalog: Catalog) -> None:
    """``POST /<type>`` on ``app`` for every job type of ``catalog`` not routed yet."""
    for spec in catalog:
        if f"/{spec.name}" not in app.routes:
            app.route(f"/{spec.name}", methods=["POST"], name=f"submit_{spec.name}")(_submit_view(spec))


def _submit_view(spec: JobSpec) -> Callable[[], Response]:
    @api_errors
    def submit() -> Response:
        return _submit(spec.name)
    submit.__name__ = submit.__qualname__ = f"submit_{spec.name}"
    return submit



@bp.route("/status/{job_id}", methods=["GET"], name="job_status")
@bp.route("/jobs/{job_id}", methods=["GET"], name="job_detail")
@api_errors
def job_status(job_id: str) -> Response:
    """The job; with ``?wait=N``, answered as soon as it ends (or after N s, as it is then)."""
    who = caller()
    wait_s = wait_seconds(query().get("wait"))
    return respond(get_service().jobs.status(job_id, principal=who.principal, wait_s=wait_s), headers=who.headers)


@bp.route("/jobs/{job_id}", methods=["DELETE"], name="job_delete")
@api_errors
def job_delete(job_id: str) -> Response:
    """Cancel the job if it runs, then delete it and everything it left (outputs, timeline, webhooks): 204."""
    who = caller()
    query()
    get_service().jobs.delete(job_id, principal=who.principal)
    return no_content(who.headers)


@bp.route("/jobs/{job_id}/retry", methods=["POST"])
@api_errors
def job_retry(job_id: str) -> Response:
    """A new job with the input of a failed, cancelled or timed-out one (``retry_of`` links back)."""
    who = caller()
    query()
    view, created = get_service().jobs.retry(job_id, principal=who.principal,
                                        idempotency_key=current_request().headers.get("idempotency-key"))
    headers = {"Location": view["links"]["status"], **who.headers}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return respond(view, 202 if created else 200, headers)


@bp.route("/job/{job_id}", methods=["POST"])
@api_errors
def job_mark(job_id: str) -> Response:
    """The first version's route, for keys in compatibility mode v1: mark a job failed, cancelled or
    timed_out (``{"status", "error"?, "remove_data"?}``), finished or not."""
    who = caller()
    query()
    if who.principal.compat != V1:
        raise NotFound("POST /job/{id} is the first version's route, kept for keys in compatibility mode v1: "
                       "use POST /jobs/{id}/cancel or DELETE /jobs/{id}")
    marked = get_service().jobs.mark(job_id, json_body(current_request()), principal=who.principal)
    return respond(marked, headers=who.headers)


@bp.route("/jobs/{job_id}/events", methods=["GET"])
@api_errors
def job_events(job_id: str) -> Response:
    """The job's timeline after ``?after=CURSOR``; with ``?wait=N``, a long poll for new events."""
    who = caller()
    params = query()
    after = params.get("after", "0")
    if not re.fullmatch(r"[0-9]{1,9}", after):
        raise ValidationError([FieldProblem("after", "must be a cursor this API returned (a number)")])
    page = get_service().jobs.events(job_id, principal=who.principal, after=int(after),
                                wait_s=wait_seconds(params.get("wait")))
    return respond(page, headers=who.headers)


@bp.route("/result/{job_id}", methods=["GET"])
@api_errors
def job_result(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().jobs.result(job_id, principal=who.principal), headers=who.headers)


@bp.route("/jobs/{job_id}/cancel", methods=["POST"])
@api_errors
def job_cancel(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().jobs.cancel(job_id, principal=who.principal), headers=who.headers)


@bp.route("/jobs/{job_id}/webhooks", methods=["GET"])
@api_errors
def job_webhooks(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().jobs.webhooks(job_id, principal=who.principal), headers=who.headers)


@bp.route("/jobs/{job_id}/webhooks/redeliver", methods=["POST"])
@api_errors
def job_webhooks_redeliver(job_id: str) -> Response:
    who = caller()
    query()
    return respond(get_service().jobs.redeliver(job_id, principal=who.principal), 202, who.headers)


@bp.route("/jobs", methods=["GET"])
@api_errors
def job_list() -> Response:
    who = caller()
    params = query()
    page = get_service().jobs.list_jobs(principal=who.principal, status=params.get("status"),
                                   job_type=params.get("type"), limit=params.get("limit"),
                                   cursor=params.get("cursor"), created_after=params.get("created_after"),
                                   created_before=params.get("created_before"), id_prefix=params.get("id_prefix"))
    return respond(page, headers=who.headers)
