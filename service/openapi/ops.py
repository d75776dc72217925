"""Liveness, readiness, metrics and the documentation itself."""

from __future__ import annotations

from typing import Any

from .components import json_ref

__all__ = ["paths"]


def paths() -> dict[str, Any]:
    return {
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
                "200": json_ref("Readiness", "Ready"),
                "503": json_ref("Readiness", "Not ready; see checks"),
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
    }
