"""``/v1/search``: search by color, and its schemas."""

from __future__ import annotations

from typing import Any

from .components import COMMON_ERRORS, HEADERS, IF_NONE_MATCH, json_ref, problem

__all__ = ["paths", "schemas"]

_HEX = "^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$"


def paths() -> dict[str, Any]:
    return {
        "/v1/search": {
            "get": {
                "operationId": "searchByColor",
                "summary": "The caller's processed images with a color near the one asked",
                "description": (
                    "Every palette computed for the caller's tenant (by `POST /v1/palette`, and "
                    "the succeeded images of finished jobs) with at least one color within "
                    "`max_delta_e` of `color`, nearest first. Distances are the engine's ΔE: "
                    "Oklab distance x 100, the measure of a palette's `delta_e_mean` (about 1 "
                    "is a just-noticeable difference). Each item names its nearest color and "
                    "where the palette is: `content_location` for a synchronous palette, or "
                    "`job_id` and `item` (the index in the job's results). Palettes leave the "
                    "index with the retention of what they point to, and a deleted job's at "
                    "once."
                ),
                "parameters": [
                    {
                        "name": "color",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": _HEX},
                        "description": "`#rrggbb` or `#rgb` (the `#` optional)",
                    },
                    {
                        "name": "max_delta_e",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 100, "default": 5},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
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
                    "200": json_ref("SearchResults", "A page of hits", {"ETag": HEADERS["ETag"]}),
                    "304": {"description": "Not modified"},
                    "400": problem(
                        "Bad color, max_delta_e, limit or cursor (bad_parameter, bad_cursor)"
                    ),
                    "501": problem(
                        "Search by color is off: encryption at rest is on (search_unavailable)"
                    ),
                    **COMMON_ERRORS,
                },
            }
        }
    }


def schemas() -> dict[str, Any]:
    hit = {
        "type": "object",
        "required": ["delta_e", "color"],
        "properties": {
            "delta_e": {"type": "number", "minimum": 0},
            "color": {
                "type": "object",
                "required": ["hex", "oklab", "fraction"],
                "properties": {
                    "hex": {"type": "string"},
                    "oklab": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 3,
                        "maxItems": 3,
                    },
                    "fraction": {"type": "number"},
                },
            },
            "content_location": {"type": "string"},
            "job_id": {"type": "string"},
            "item": {"type": "integer", "minimum": 0},
            "results_url": {"type": "string"},
        },
    }
    return {
        "SearchHit": hit,
        "SearchResults": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "color": {"type": "string"},
                "max_delta_e": {"type": "number"},
                "metric": {"type": "string", "const": "oklab_delta_e_x100"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/SearchHit"}},
                "next_cursor": {"type": ["string", "null"]},
                "next": {"type": ["string", "null"]},
            },
        },
    }
