"""API keys, the audit log and the per-tenant callback secret; the gate's answers on every
operation behind it (401, 403, 408, 429)."""

from __future__ import annotations

from typing import Any

from .components import json_ref, problem

__all__ = ["GATE_RESPONSES", "paths", "schemas"]

GATE_RESPONSES: dict[str, Any] = {
    "401": problem("No credential, or one that is not valid (unknown, expired, revoked)"),
    "403": problem("The credential's role does not allow this"),
    "408": problem("The request body stalled"),
    "429": problem("Rate limited (see RateLimit and Retry-After), or too many active jobs"),
}

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}
_CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string"}}


def schemas() -> dict[str, Any]:
    return {
        "ApiKey": {
            "type": "object",
            "required": ["id", "tenant", "role", "name", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "tenant": {"type": "string"},
                "role": {"enum": ["viewer", "member", "admin"]},
                "name": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": _NULLABLE_TIME,
                "last_used_at": _NULLABLE_TIME,
                "revoked_at": _NULLABLE_TIME,
                "key": {
                    "type": "string",
                    "description": "pal_live_<id>_<secret><checksum>; only in the 201 answer",
                },
            },
        },
        "ApiKeyList": {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "AuditEntry": {
            "type": "object",
            "properties": {
                name: {"type": "integer"} if name == "seq" else {"type": "string"}
                for name in (
                    "seq", "at", "actor", "tenant", "action", "target", "outcome",
                    "request_id", "client",
                )
            },
        },
        "AuditPage": {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    }


def paths() -> dict[str, Any]:
    return {
        "/v1/api-keys": {
            "get": {
                "operationId": "listApiKeys",
                "summary": "The tenant's API keys (admin; never the keys themselves)",
                "parameters": [_LIMIT, _CURSOR],
                "responses": {
                    "200": json_ref("ApiKeyList", "Keys"),
                    "400": problem("Bad limit"),
                },
            },
            "post": {
                "operationId": "createApiKey",
                "summary": "Mint a key for the caller's tenant (admin); the key is shown once",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["role"],
                                "additionalProperties": False,
                                "properties": {
                                    "role": {"enum": ["viewer", "member", "admin"]},
                                    "name": {"type": "string", "maxLength": 200},
                                    "expires_in": {
                                        "type": ["integer", "null"],
                                        "minimum": 1,
                                        "maximum": 315360000,
                                        "description": "Seconds; absent or null: never",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": json_ref("ApiKey", "Created; `key` holds the key"),
                    "400": problem("Not a JSON object"),
                    "413": problem("Body too large"),
                    "422": problem("A field is not valid"),
                },
            },
        },
        "/v1/api-keys/{key_id}": {
            "delete": {
                "operationId": "revokeApiKey",
                "summary": "Revoke a key (admin); it stops working at once",
                "parameters": [
                    {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"204": {"description": "Revoked"}, "404": problem("No such key")},
            }
        },
        "/v1/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "The tenant's audit log, newest first (admin)",
                "parameters": [
                    {"name": "action", "in": "query", "schema": {"type": "string"}},
                    {"name": "actor", "in": "query", "schema": {"type": "string"}},
                    {"name": "since", "in": "query", "schema": {"type": "string"}},
                    {"name": "until", "in": "query", "schema": {"type": "string"}},
                    _LIMIT,
                    _CURSOR,
                ],
                "responses": {
                    "200": json_ref("AuditPage", "Entries"),
                    "400": problem("Bad filter or cursor"),
                },
            }
        },
        "/v1/webhook-callback-secret": {
            "get": {
                "operationId": "getCallbackSecret",
                "summary": "The secret that signs this tenant's per-job callbacks (admin)",
                "responses": {
                    "200": {
                        "description": "The whsec_ secret",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"secret": {"type": "string"}},
                                }
                            }
                        },
                    }
                },
            }
        },
    }
