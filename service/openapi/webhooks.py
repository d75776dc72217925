"""The webhook and signed-download routes, and the events the service sends.

Bounds here are exactly the ones the handlers enforce, so a fuzzer's "invalid" data is what they
refuse.
"""

from __future__ import annotations

from typing import Any

from ..signed_urls import DISPOSITIONS, FILENAME_PATTERN, MAX_EXPIRES_IN
from ..webhooks.api import MAX_BATCH_EVENTS, MAX_BATCH_WAIT_MS, MESSAGE_STATUSES
from ..webhooks.events import JOB_EVENTS
from .components import IF_NONE_MATCH, JOB_ID, json_ref, problem

__all__ = ["paths", "schemas", "webhooks"]

_REF = "#/components/schemas/"


def _body(ref: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": {"$ref": _REF + ref}}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}


def _page(ref: str) -> dict[str, Any]:
    """A list response: one page of ``ref`` items and the cursor of the next page."""
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": _REF + ref}},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


_ETAG = {"ETag": {"schema": {"type": "string"}, "description": "Strong validator"}}
_LIST_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]
_MESSAGE_PARAMS = [
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "string", "enum": list(MESSAGE_STATUSES)},
    },
    {"name": "job_id", "in": "query", "schema": {"type": "string"}},
    *_LIST_PARAMS,
]
_E = _path("endpoint_id")
_M = _path("message_id")
_401 = {"401": problem("Missing or invalid API key (only when API keys are configured)")}
_NOT_FOUND = {"404": problem("No such endpoint or message for this tenant")}


def paths() -> dict[str, Any]:
    endpoint_ops = {
        "get": {
            "operationId": "getWebhookEndpoint",
            "summary": "One webhook endpoint (without its secret)",
            "parameters": [_E, IF_NONE_MATCH],
            "responses": {
                "200": json_ref("WebhookEndpoint", "The endpoint", _ETAG),
                "304": {"description": "Not modified"},
                **_401,
                **_NOT_FOUND,
            },
        },
        "patch": {
            "operationId": "updateWebhookEndpoint",
            "summary": "Change an endpoint; If-Match guards against lost updates",
            "parameters": [_E, _header("If-Match")],
            "requestBody": _body("WebhookEndpointChanges"),
            "responses": {
                "200": json_ref("WebhookEndpoint", "The changed endpoint", _ETAG),
                "400": problem("Malformed JSON"),
                **_401,
                **_NOT_FOUND,
                "412": problem("If-Match does not match the current ETag"),
                "413": problem("Body too large"),
                "422": problem("A field is invalid, or the URL is not allowed (SSRF guard)"),
            },
        },
        "delete": {
            "operationId": "deleteWebhookEndpoint",
            "summary": "Delete an endpoint and its messages",
            "parameters": [_E, _header("If-Match")],
            "responses": {
                "204": {"description": "Deleted"},
                **_401,
                **_NOT_FOUND,
                "412": problem("If-Match does not match the current ETag"),
            },
        },
    }
    resend: dict[str, Any] = {
        "operationId": "resendWebhookMessage",
        "summary": "Queue one message again now, with a fresh retry budget",
        "responses": {
            "202": json_ref("WebhookMessage", "Queued"),
            **_401,
            **_NOT_FOUND,
            "409": problem("The message is being delivered right now"),
        },
    }
    get_message: dict[str, Any] = {
        "summary": "One message with every attempt",
        "responses": {"200": json_ref("WebhookMessage", "The message"), **_401, **_NOT_FOUND},
    }
    list_messages: dict[str, Any] = {
        "summary": "Messages, newest first, each with every attempt (dead letters: status=failed)",
        "responses": {
            "200": json_ref("WebhookMessageList", "A page of messages"),
            "400": problem("Bad query parameter"),
            **_401,
        },
    }
    return {
        "/v1/webhook-endpoints": {
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Register an endpoint; its signing secret is returned only here",
                "requestBody": _body("WebhookEndpointCreate"),
                "responses": {
                    "201": json_ref(
                        "WebhookEndpointWithSecret",
                        "Created",
                        {**_ETAG, "Location": {"schema": {"type": "string"}}},
                    ),
                    "400": problem("Malformed JSON"),
                    **_401,
                    "413": problem("Body too large"),
                    "422": problem("A field is invalid, or the URL is not allowed (SSRF guard)"),
                },
            },
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "The caller's endpoints",
                "parameters": _LIST_PARAMS,
                "responses": {
                    "200": json_ref("WebhookEndpointList", "A page of endpoints"),
                    "400": problem("Bad query parameter"),
                    **_401,
                },
            },
        },
        "/v1/webhook-endpoints/{endpoint_id}": endpoint_ops,
        "/v1/webhook-endpoints/{endpoint_id}/secret/rotate": {
            "post": {
                "operationId": "rotateWebhookSecret",
                "summary": "New secret (returned once); the old one keeps signing for 24 h",
                "parameters": [_E],
                "responses": {
                    "200": json_ref("WebhookEndpointWithSecret", "Rotated"),
                    **_401,
                    **_NOT_FOUND,
                },
            }
        },
        "/v1/webhook-endpoints/{endpoint_id}/test": {
            "post": {
                "operationId": "sendTestWebhook",
                "summary": "Send an example event to the endpoint",
                "parameters": [_E],
                "requestBody": _body("WebhookTest", required=False),
                "responses": {
                    "202": json_ref("WebhookMessage", "Queued"),
                    "400": problem("Malformed JSON"),
                    **_401,
                    **_NOT_FOUND,
                    "413": problem("Body too large"),
                    "422": problem("Unknown event type"),
                },
            }
        },
        "/v1/webhook-endpoints/{endpoint_id}/recover": {
            "post": {
                "operationId": "recoverWebhookMessages",
                "summary": "Re-queue every failed message created in a time window",
                "parameters": [_E],
                "requestBody": _body("WebhookRecover"),
                "responses": {
                    "202": json_ref("WebhookRecovered", "Queued"),
                    "400": problem("Malformed JSON"),
                    **_401,
                    **_NOT_FOUND,
                    "413": problem("Body too large"),
                    "422": problem("Bad window"),
                },
            }
        },
        "/v1/webhook-endpoints/{endpoint_id}/messages": {
            "get": {
                **list_messages,
                "operationId": "listWebhookEndpointMessages",
                "parameters": [_E, *_MESSAGE_PARAMS],
                "responses": {**list_messages["responses"], **_NOT_FOUND},
            }
        },
        "/v1/webhook-endpoints/{endpoint_id}/messages/{message_id}": {
            "get": {
                **get_message,
                "operationId": "getWebhookEndpointMessage",
                "parameters": [_E, _M],
            }
        },
        "/v1/webhook-endpoints/{endpoint_id}/messages/{message_id}/resend": {
            "post": {**resend, "parameters": [_E, _M]}
        },
        "/v1/webhook-messages": {
            "get": {
                **list_messages,
                "operationId": "listCallbackMessages",
                "summary": "Per-job callback messages, newest first",
                "parameters": _MESSAGE_PARAMS,
            }
        },
        "/v1/webhook-messages/{message_id}": {
            "get": {**get_message, "operationId": "getWebhookMessage", "parameters": [_M]}
        },
        "/v1/webhook-messages/{message_id}/resend": {
            "post": {**resend, "operationId": "resendCallbackMessage", "parameters": [_M]}
        },
        "/v1/jobs/{job_id}/download-url": {
            "post": {
                "operationId": "createDownloadUrl",
                "summary": "A signed, expiring link to the job's results (no other credential)",
                "parameters": [JOB_ID],
                "requestBody": _body("DownloadUrlRequest", required=False),
                "responses": {
                    "200": json_ref("DownloadUrl", "The link"),
                    "400": problem("Malformed JSON"),
                    **_401,
                    "404": problem("No such job"),
                    "409": problem("Not finished yet, or no results"),
                    "413": problem("Body too large"),
                    "422": problem("Bad expires_in, disposition or filename"),
                },
            }
        },
        "/v1/downloads/jobs/{job_id}/results": {
            "get": {
                "operationId": "downloadSignedResults",
                "summary": "The results through a signed link (the signature is the credential)",
                "security": [{}],
                "parameters": [
                    JOB_ID,
                    *(
                        {"name": n, "in": "query", "required": True, "schema": {"type": "string"}}
                        for n in ("disposition", "filename", "expires", "kid", "sig")
                    ),
                    IF_NONE_MATCH,
                    _header("Range"),
                    _header("If-Range"),
                ],
                "responses": {
                    "200": {
                        "description": "The results document, with Content-Disposition",
                        "headers": _ETAG,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "206": {"description": "A byte range of the results document"},
                    "304": {"description": "Not modified"},
                    "307": {
                        "description": "With PALETTE_PRESIGNED_DOWNLOADS on S3 blobs: to a "
                        "presigned S3 GET of the results that expires with the link",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "403": problem("signature_invalid (tampered, other job) or url_expired"),
                    "404": problem("The job expired (retention)"),
                    "409": problem("The job has no results"),
                    "416": problem("Range not satisfiable"),
                },
            }
        },
    }


def schemas() -> dict[str, Any]:
    event_type = {"type": "string", "enum": ["*", *JOB_EVENTS]}
    batch = {
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {
                    "max_events": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_EVENTS},
                    "max_wait_ms": {"type": "integer", "minimum": 0, "maximum": MAX_BATCH_WAIT_MS},
                },
                "additionalProperties": False,
            },
        ]
    }
    fields: dict[str, Any] = {
        "url": {"type": "string", "minLength": 1, "maxLength": 2048},
        "description": {"type": "string", "maxLength": 500},
        "event_types": {"type": "array", "minItems": 1, "items": event_type},
        "disabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"], "maxLength": 500},
        "batch": batch,
        "metadata": {
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"maxLength": 100},
            "additionalProperties": {"type": "string", "maxLength": 1000},
        },
    }
    endpoint = {
        "type": "object",
        "required": ["id", "url", "event_types", "disabled", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "description": {"type": "string"},
            "event_types": {"type": "array", "items": {"type": "string"}},
            "disabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"]},
            "batch": {"type": ["object", "null"]},
            "metadata": {"type": "object"},
            "failing_since": {"type": ["string", "null"]},
            "previous_secret_expires_at": {"type": ["string", "null"]},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
        },
    }
    attempt = {
        "type": "object",
        "required": ["at", "status_code", "latency_ms", "error", "trigger"],
        "properties": {
            "at": {"type": "string"},
            "status_code": {"type": ["integer", "null"]},
            "latency_ms": {"type": ["number", "null"]},
            "error": {"type": ["string", "null"]},
            "trigger": {"type": "string", "enum": ["scheduled", "resend", "recover"]},
        },
    }
    message = {
        "type": "object",
        "required": ["id", "status", "event_type", "created_at", "attempts"],
        "properties": {
            "id": {"type": "string", "description": "The webhook-id header, stable on retries"},
            "endpoint_id": {"type": ["string", "null"]},
            "job_id": {"type": ["string", "null"]},
            "event_type": {"type": "string"},
            "status": {"type": "string", "enum": list(MESSAGE_STATUSES)},
            "attempts": {"type": "array", "items": attempt},
        },
    }
    event = {
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "enum": list(JOB_EVENTS)},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "required": ["job_id", "status", "links"],
                "properties": {
                    "job_id": {"type": "string"},
                    "status": {"type": "string"},
                    "progress": {"type": "object"},
                    "error": {"type": "object"},
                    "links": {"type": "object"},
                },
            },
        },
    }
    return {
        "WebhookEndpointCreate": {
            "type": "object",
            "required": ["url"],
            "properties": fields,
            "additionalProperties": False,
        },
        "WebhookEndpointChanges": {
            "type": "object",
            "properties": fields,
            "additionalProperties": False,
        },
        "WebhookEndpoint": endpoint,
        "WebhookEndpointWithSecret": {
            "allOf": [
                {"$ref": _REF + "WebhookEndpoint"},
                {
                    "type": "object",
                    "required": ["secret"],
                    "properties": {"secret": {"type": "string", "pattern": "^whsec_"}},
                },
            ]
        },
        "WebhookEndpointList": _page("WebhookEndpoint"),
        "WebhookMessage": message,
        "WebhookMessageList": _page("WebhookMessage"),
        "WebhookTest": {
            "type": "object",
            "properties": {"event_type": {"type": "string", "enum": list(JOB_EVENTS)}},
        },
        "WebhookRecover": {
            "type": "object",
            "required": ["since"],
            "properties": {
                "since": {"type": ["number", "string"], "description": "RFC 3339 or epoch s"},
                "until": {"type": ["number", "string", "null"]},
            },
        },
        "WebhookRecovered": {
            "type": "object",
            "required": ["recovered"],
            "properties": {"recovered": {"type": "integer"}},
        },
        "DownloadUrlRequest": {
            "type": "object",
            "properties": {
                "expires_in": {"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_IN},
                "disposition": {"type": "string", "enum": list(DISPOSITIONS)},
                "filename": {"type": "string", "pattern": FILENAME_PATTERN.pattern},
            },
            "additionalProperties": False,
        },
        "DownloadUrl": {
            "type": "object",
            "required": ["url", "method", "expires_at", "expires_in"],
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string"},
                "expires_at": {"type": "string"},
                "expires_in": {"type": "integer"},
            },
        },
        "WebhookEvent": event,
    }


def webhooks() -> dict[str, Any]:
    """OpenAPI 3.1 ``webhooks``: what the service POSTs to endpoints and callback URLs."""
    headers = [
        {"name": n, "in": "header", "required": True, "schema": {"type": "string"}}
        for n in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ]
    single = {"$ref": _REF + "WebhookEvent"}
    batch = {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": single}},
    }
    return {
        "jobEvent": {
            "post": {
                "summary": "A job event (Standard Webhooks signing), or a batch of them",
                "parameters": headers,
                "requestBody": {
                    "content": {"application/json": {"schema": {"oneOf": [single, batch]}}}
                },
                "responses": {
                    "2XX": {"description": "Delivered"},
                    "410": {"description": "Gone: the endpoint is disabled"},
                    "429": {"description": "Retry later (Retry-After honoured)"},
                },
            }
        }
    }
