"""The OpenAPI 3.1 description of the service, written by hand to say exactly what it does."""

from __future__ import annotations

from typing import Any

__all__ = ["build_spec"]


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _json(ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_H = {
    "ETag": {"schema": {"type": "string"}, "description": "Strong validator of the body"},
    "Retry-After": {"schema": {"type": "string"}, "description": "Seconds before polling again"},
    "Location": {"schema": {"type": "string"}, "description": "The job's address"},
    "Content-Location": {
        "schema": {"type": "string"},
        "description": "Cacheable address of this palette (GET it later)",
    },
}

_OPTION_PARAMS: list[dict[str, Any]] = [
    {
        "name": "colors",
        "in": "query",
        "description": "Palette size (1..max_colors, default 8)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 64, "default": 8},
    },
    {
        "name": "exact",
        "in": "query",
        "description": "Analyse every pixel instead of a budget",
        "schema": {"type": "boolean", "default": False},
    },
    {
        "name": "pixel_budget",
        "in": "query",
        "description": "Pixels analysed (shrink-on-load)",
        "schema": {"type": "integer", "minimum": 1024},
    },
    {
        "name": "alpha_threshold",
        "in": "query",
        "description": (
            "Unset (the default): each pixel counts in proportion to its alpha. Set: pixels "
            "below this alpha are ignored and the rest count in full"
        ),
        "schema": {"type": "integer", "minimum": 0, "maximum": 255},
    },
    {
        "name": "max_color_fraction",
        "in": "query",
        "description": "Merge limit for a dominant color (0 < f <= 1)",
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    },
    {
        "name": "snap",
        "in": "query",
        "description": "Snap colors to the nearest image pixel",
        "schema": {"type": "boolean", "default": False},
    },
]

_OPTION_FIELDS: dict[str, Any] = {
    p["name"]: {**p["schema"], "description": p["description"]} for p in _OPTION_PARAMS
}

_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
}


def build_spec() -> dict[str, Any]:
    common_errors = {
        "401": _problem("Missing or invalid API key (only when API keys are configured)"),
    }
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "PaletteEngine",
            "version": "1.0.0",
            "description": (
                "Color palettes from images. `POST /v1/palette` answers at once; `POST /v1/jobs` "
                "queues images and ZIP archives. Errors are RFC 9457 problem documents with a "
                "stable `code`; limit errors name the limit and the value. Finished jobs are "
                "kept for the retention period (default 7 days), then answer 404."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "paths": {
            "/v1/palette": {
                "post": {
                    "operationId": "createPalette",
                    "summary": "Extract the palette of one image (synchronous)",
                    "description": (
                        "The body is the image bytes (any content type but multipart), or "
                        "multipart/form-data with one `file` part. The type is detected from "
                        "the bytes. Results are cached by image digest and options."
                    ),
                    "parameters": _OPTION_PARAMS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"file": {"type": "string", "format": "binary"}},
                                    "required": ["file"],
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": _json(
                            "Palette",
                            "The palette",
                            {"ETag": _H["ETag"], "Content-Location": _H["Content-Location"]},
                        ),
                        "400": _problem("Bad option, empty body or malformed multipart"),
                        **common_errors,
                        "413": _problem("Body over max_sync_bytes (limit_bytes)"),
                        "415": _problem("Not an image (by magic bytes), or an archive"),
                        "422": _problem(
                            "Corrupt image, or more pixels than max_pixels "
                            "(limit_pixels, actual_pixels)"
                        ),
                    },
                }
            },
            "/v1/palettes/{digest}": {
                "get": {
                    "operationId": "getPalette",
                    "summary": "A cached palette by image digest (BLAKE3, hex) and options",
                    "parameters": [
                        {
                            "name": "digest",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        *_OPTION_PARAMS,
                        _IF_NONE_MATCH,
                    ],
                    "responses": {
                        "200": _json("Palette", "The palette", {"ETag": _H["ETag"]}),
                        "304": {"description": "Not modified (If-None-Match matched)"},
                        "400": _problem("Bad option"),
                        **common_errors,
                        "404": _problem("Not in the cache"),
                    },
                }
            },
            "/v1/jobs": {
                "post": {
                    "operationId": "createJob",
                    "summary": "Queue images and ZIP archives",
                    "description": (
                        "multipart/form-data with one or more `file` parts (images or ZIPs), "
                        "palette options as fields and an optional `callback_url`. Uploads are "
                        "streamed to storage. Honors `Idempotency-Key`."
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
                                        **_OPTION_FIELDS,
                                    },
                                    "required": ["file"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            "Job",
                            "Accepted (or replayed for the same Idempotency-Key)",
                            {"Location": _H["Location"], "Retry-After": _H["Retry-After"]},
                        ),
                        "400": _problem("Bad option, no file parts, malformed multipart"),
                        **common_errors,
                        "409": _problem("Same Idempotency-Key still in flight"),
                        "413": _problem("Body over max_request_bytes (limit_bytes)"),
                        "415": _problem("Not multipart, or a part is neither image nor ZIP"),
                        "422": _problem(
                            "Too many images, unreadable ZIP, or Idempotency-Key "
                            "reused with another body"
                        ),
                        "503": _problem("Draining: retry later (Retry-After)"),
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
                        _IF_NONE_MATCH,
                    ],
                    "responses": {
                        "200": _json("JobList", "A page of jobs", {"ETag": _H["ETag"]}),
                        "304": {"description": "Not modified"},
                        "400": _problem("Bad status, limit or cursor"),
                        **common_errors,
                    },
                },
            },
            "/v1/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "A job's status and progress",
                    "parameters": [_JOB_ID, _IF_NONE_MATCH],
                    "responses": {
                        "200": _json(
                            "Job", "The job", {"ETag": _H["ETag"], "Retry-After": _H["Retry-After"]}
                        ),
                        "304": {"description": "Not modified"},
                        **common_errors,
                        "404": _problem("No such job (or another tenant's, or expired)"),
                    },
                },
                "delete": {
                    "operationId": "deleteJob",
                    "summary": "Delete a job, its uploads and its results",
                    "parameters": [_JOB_ID],
                    "responses": {
                        "204": {"description": "Deleted"},
                        **common_errors,
                        "404": _problem("No such job"),
                        "409": _problem("The job is running"),
                    },
                },
            },
            "/v1/jobs/{job_id}/results": {
                "get": {
                    "operationId": "getJobResults",
                    "summary": "One entry per image: its palette or its error",
                    "parameters": [
                        _JOB_ID,
                        _IF_NONE_MATCH,
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
                        "200": _json("Results", "The results document", {"ETag": _H["ETag"]}),
                        "206": {
                            "description": "A byte range of the results document (its "
                            "Content-Type stays application/json; the bytes are a slice)"
                        },
                        "304": {"description": "Not modified"},
                        **common_errors,
                        "404": _problem("No such job"),
                        "409": _problem("Not finished yet, or canceled (no results)"),
                        "416": _problem("Range not satisfiable"),
                    },
                }
            },
            "/v1/jobs/{job_id}/cancel": {
                "post": {
                    "operationId": "cancelJob",
                    "summary": "Cancel: queued at once, running within one second",
                    "parameters": [_JOB_ID],
                    "responses": {
                        "200": _json("Job", "Canceled"),
                        "202": _json("Job", "Cancel requested; the job stops within 1 s"),
                        **common_errors,
                        "404": _problem("No such job"),
                        "409": _problem("Already succeeded or failed"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "Alive",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness (503 when draining)",
                    "security": [{}],
                    "responses": {
                        "200": _json("Readiness", "Ready"),
                        "503": _json("Readiness", "Not ready; see checks"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "Text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/docs": {
                "get": {
                    "operationId": "docs",
                    "summary": "API reference page",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "HTML",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": _schemas(),
        },
    }
    # webhooks (issue #4): the webhook, callback and signed-download routes, and the events sent
    try:
        from .webhooks import openapi as webhooks_openapi
    except ImportError:
        return spec
    spec["paths"].update(webhooks_openapi.paths())
    spec["components"]["schemas"].update(webhooks_openapi.schemas())
    spec["webhooks"] = webhooks_openapi.webhooks()
    return spec


def _schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    color = {
        "type": "object",
        "required": ["hex", "rgb", "population", "fraction"],
        "properties": {
            "hex": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
            "rgb": {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3},
            "oklab": {"type": "array", "items": {"type": "number"}},
            "oklch": {"type": "array", "items": {"type": "number"}},
            "population": {"type": "integer"},
            "fraction": {"type": "number"},
        },
    }
    return {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string"},
                "request_id": {"type": "string"},
            },
            "additionalProperties": True,
        },
        "Color": color,
        "Palette": {
            "type": "object",
            "required": ["colors", "metrics", "width", "height"],
            "properties": {
                "colors": {"type": "array", "items": {"$ref": "#/components/schemas/Color"}},
                "swatches": {"type": "object"},
                "metrics": {"type": "object"},
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "analyzed_pixels": {"type": "integer"},
                "transparent_fraction": {"type": "number"},
                "reason": {"type": ["string", "null"]},
                "options": {"type": "object"},
            },
        },
        "Job": {
            "type": "object",
            "required": ["id", "status", "progress", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": ["queued", "running", "succeeded", "failed", "canceled"],
                },
                "progress": {
                    "type": "object",
                    "required": ["total", "done", "failed", "skipped"],
                    "properties": {
                        k: {"type": "integer"} for k in ("total", "done", "failed", "skipped")
                    },
                },
                "options": {"type": "object"},
                "callback_url": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": nullable_time,
                "started_at": nullable_time,
                "finished_at": nullable_time,
                "expires_at": nullable_time,
                "cancel_requested": {"type": "boolean"},
                "error": {"type": ["object", "null"]},
                "results_url": {"type": ["string", "null"]},
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs", "next_cursor"],
            "properties": {
                "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                "next_cursor": {"type": ["string", "null"]},
                "next": {"type": ["string", "null"]},
            },
        },
        "Results": {
            "type": "object",
            "required": ["job_id", "items", "count"],
            "properties": {
                "job_id": {"type": "string"},
                "error": {"type": ["object", "null"]},
                "count": {"type": "integer"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "name", "status"],
                        "properties": {
                            "index": {"type": "integer"},
                            "input": {"type": "string"},
                            "name": {"type": "string"},
                            "status": {
                                "type": "string",
                                "enum": ["succeeded", "failed", "skipped"],
                            },
                            "palette": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Palette"},
                                    {"type": "null"},
                                ]
                            },
                            "error": {"type": ["object", "null"]},
                        },
                    },
                },
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
        },
    }
