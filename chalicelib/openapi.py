"""The OpenAPI 3.1 document, rendered from the schemas that validate requests."""
from __future__ import annotations

from typing import Any

from chalicelib.jobspec import Catalog
from chalicelib.models import JobStatus

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"},
        "status": {"type": "string", "description": "Current job status (409 not_ready)."},
        "fields": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "reason": {"type": "string"}}}}}}},
}
_JOB: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "type": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "attempt": {"type": "integer"}, "max_attempts": {"type": "integer"},
        "queue_position": {"type": "integer", "description": "Jobs ahead of this one (approximate), while queued."},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "error": {"type": "string"}, "node": {"type": "string"},
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_RESULT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string"}, "status": {"type": "string"},
        "result_url": {"type": "string", "description": "csm/portrait: presigned download URL, signed on each read."},
        "text": {"type": "string", "description": "whisper/analyze: the text."},
        "error": {"type": "string", "description": "failed/cancelled/timed_out: why."},
        "files": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _err(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _job_id_param() -> dict[str, Any]:
    return {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def build_openapi(version: str, catalog: Catalog) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    job = {**_JOB, "properties": {**_JOB["properties"], "type": {"type": "string", "enum": catalog.names()}}}
    schemas: dict[str, Any] = {"Error": _ERROR, "Job": job, "Result": _RESULT}
    job_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
    for spec in catalog:
        name = f"{spec.name.capitalize()}Request"
        schemas[name] = spec.json_schema()
        paths[f"/{spec.name}"] = {"post": {
            "summary": spec.summary, "operationId": f"submit_{spec.name}",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": "Same key and body return the original job; another body is 409."}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{name}"}}}},
            "responses": {"202": {"description": "Queued; Location points at the status.", **job_ref},
                          "200": {"description": "Idempotent replay of an earlier submit.", **job_ref},
                          "400": _err("Invalid field(s), each named with its reason."),
                          "409": _err("Idempotency-Key reused with another body."),
                          "413": _err("Body too large."), "415": _err("Not application/json."),
                          "503": _err("Redis or the queue is unavailable.")}}}
    paths["/status/{job_id}"] = {"get": {"summary": "Job status", "parameters": [_job_id_param()],
                                         "responses": {"200": {"description": "The job.", **job_ref},
                                                       "404": _err("No such job.")}}}
    paths["/jobs/{job_id}"] = paths["/status/{job_id}"]
    paths["/result/{job_id}"] = {"get": {"summary": "Job result", "parameters": [_job_id_param()], "responses": {
        "200": {"description": "A finished job: result_url or text, or error for failed/cancelled/timed_out.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}},
        "404": _err("No such job."),
        "409": _err("Not finished yet: error.code is not_ready and error.status the current status.")}}}
    paths["/jobs/{job_id}/cancel"] = {"post": {"summary": "Cancel a job", "parameters": [_job_id_param()],
                                               "responses": {"200": {"description": "Cancelled or flagged.",
                                                                     **job_ref},
                                                             "404": _err("No such job.")}}}
    paths["/jobs/{job_id}/webhooks"] = {"get": {
        "summary": "Webhook deliveries of a job, each attempt with time, status code or error, duration",
        "parameters": [_job_id_param()],
        "responses": {"200": {"description": "Deliveries."}, "404": _err("No such job.")}}}
    paths["/jobs/{job_id}/webhooks/redeliver"] = {"post": {
        "summary": "Send the completion webhook again (same webhook-id)", "parameters": [_job_id_param()],
        "responses": {"202": {"description": "Queued for delivery."}, "404": _err("No such job."),
                      "409": _err("Not finished, or no notify_url.")}}}
    paths["/jobs"] = {"get": {"summary": "List jobs, newest first", "parameters": [
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in JobStatus]}},
        {"name": "type", "in": "query", "schema": {"type": "string", "enum": catalog.names()}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "A page of jobs and next_cursor (null at the end)."},
                      "400": _err("Bad filter.")}}}
    paths["/nodes"] = {"get": {"summary": "GPU nodes in the shared pool (admin keys)",
                               "responses": {"200": {"description": "Nodes with state, busy slots, jobs run, "
                                                                   "GPU seconds, idle since and expiry."},
                                             "403": _err("Not an admin key.")}}}
    paths["/health"] = {"get": {"summary": "Redis, queue depth and live workers",
                                "responses": {"200": {"description": "Healthy."},
                                              "503": {"description": "A backend is down."}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "C3 Render API", "version": version,
                 "description": "Submit speech, transcription, talking-portrait and image-analysis jobs; "
                                "poll status/result or receive a signed webhook."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
