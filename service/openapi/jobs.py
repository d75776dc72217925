"""``/v1/jobs`` and a job's results and cancel."""

from __future__ import annotations

from typing import Any

from .components import OPTION_FIELDS, COMMON_ERRORS, HEADERS, IF_NONE_MATCH, JOB_ID, json_ref, problem

__all__ = ["paths"]


def paths() -> dict[str, Any]:
    return {
    "/v1/jobs": {
        "post": {
            "operationId": "createJob",
            "summary": "Queue images and ZIP archives",
            "description": (
                "multipart/form-data with one or more `file` parts (images or ZIPs), "
                "palette options as fields and an optional `callback_url`. Uploads are "
                "streamed to storage. Honors `Idempotency-Key`. With `analyze=true` each "
                "image is also analysed (quality, subject, crops, palettes)."
            ),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "binary"},
                                },
                                "callback_url": {"type": "string", "format": "uri"},
                                **OPTION_FIELDS,
                                "analyze": {
                                    "type": "boolean",
                                    "default": False,
                                    "description": (
                                        "Each succeeded item also carries `analysis` (as "
                                        "POST /v1/analyze answers)"
                                    ),
                                },
                            },
                            "required": ["file"],
                        }
                    }
                },
            },
            "responses": {
                "202": json_ref(
                    "Job",
                    "Accepted (or replayed for the same Idempotency-Key)",
                    {"Location": HEADERS["Location"], "Retry-After": HEADERS["Retry-After"]},
                ),
                "400": problem("Bad option, no file parts, malformed multipart"),
                **COMMON_ERRORS,
                "409": problem("Same Idempotency-Key still in flight"),
                "413": problem("Body over max_request_bytes (limit_bytes)"),
                "415": problem("Not multipart, or a part is neither image nor ZIP"),
                "422": problem(
                    "Too many images, unreadable ZIP, or Idempotency-Key "
                    "reused with another body"
                ),
                "503": problem("Draining: retry later (Retry-After)"),
            },
        },
        "get": {
            "operationId": "listJobs",
            "summary": "The caller's jobs, newest first",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["queued", "running", "succeeded", "failed", "canceled"],
                    },
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 200,
                        "default": 50,
                    },
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "`next_cursor` of the previous page",
                },
                IF_NONE_MATCH,
            ],
            "responses": {
                "200": json_ref("JobList", "A page of jobs", {"ETag": HEADERS["ETag"]}),
                "304": {"description": "Not modified"},
                "400": problem("Bad status, limit or cursor"),
                **COMMON_ERRORS,
            },
        },
    },
    "/v1/jobs/{job_id}": {
        "get": {
            "operationId": "getJob",
            "summary": "A job's status and progress",
            "parameters": [JOB_ID, IF_NONE_MATCH],
            "responses": {
                "200": json_ref(
                    "Job", "The job", {"ETag": HEADERS["ETag"], "Retry-After": HEADERS["Retry-After"]}
                ),
                "304": {"description": "Not modified"},
                **COMMON_ERRORS,
                "404": problem("No such job (or another tenant's, or expired)"),
            },
        },
        "delete": {
            "operationId": "deleteJob",
            "summary": "Delete a job, its uploads and its results",
            "parameters": [JOB_ID],
            "responses": {
                "204": {"description": "Deleted"},
                **COMMON_ERRORS,
                "404": problem("No such job"),
                "409": problem("The job is running"),
            },
        },
    },
    "/v1/jobs/{job_id}/results": {
        "get": {
            "operationId": "getJobResults",
            "summary": "One entry per image: its palette or its error",
            "parameters": [
                JOB_ID,
                IF_NONE_MATCH,
                {
                    "name": "Range",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
                {
                    "name": "If-Range",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": json_ref("Results", "The results document", {"ETag": HEADERS["ETag"]}),
                "206": {
                    "description": "A byte range of the results document (its "
                    "Content-Type stays application/json; the bytes are a slice)"
                },
                "304": {"description": "Not modified"},
                **COMMON_ERRORS,
                "404": problem("No such job"),
                "409": problem("Not finished yet, or canceled (no results)"),
                "416": problem("Range not satisfiable"),
            },
        }
    },
    "/v1/jobs/{job_id}/cancel": {
        "post": {
            "operationId": "cancelJob",
            "summary": "Cancel: queued at once, running within one second",
            "parameters": [JOB_ID],
            "responses": {
                "200": json_ref("Job", "Canceled"),
                "202": json_ref("Job", "Cancel requested; the job stops within 1 s"),
                **COMMON_ERRORS,
                "404": problem("No such job"),
                "409": problem("Already succeeded or failed"),
            },
        }
    },
    }
