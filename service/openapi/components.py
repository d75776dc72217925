"""The pieces every part of the OpenAPI document shares: problem responses, headers, options."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANALYSIS_PARAMS",
    "BRAND_PARAMS",
    "COMMON_ERRORS",
    "HEADERS",
    "IF_NONE_MATCH",
    "IMAGE_BODY",
    "JOB_ID",
    "OPTION_FIELDS",
    "OPTION_PARAMS",
    "json_ref",
    "problem",
]


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def json_ref(ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    if headers:
        out["headers"] = headers
    return out


HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "Strong validator of the body"},
    "Retry-After": {"schema": {"type": "string"}, "description": "Seconds before polling again"},
    "Location": {"schema": {"type": "string"}, "description": "The job's address"},
    "Content-Location": {
        "schema": {"type": "string"},
        "description": "Cacheable address of this palette (GET it later)",
    },
}

OPTION_PARAMS: list[dict[str, Any]] = [
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

_HEX = "#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})"
_ASPECT = "[1-9][0-9]{0,2}:[1-9][0-9]{0,2}"

BRAND_PARAMS: list[dict[str, Any]] = [
    {
        "name": "brand",
        "in": "query",
        "description": (
            "Brand colors, 1-16 hex values separated by commas (`%23112233,%23445566`; the "
            "`#` is optional): adds a `brand` block to the palette"
        ),
        "schema": {"type": "string", "pattern": f"^{_HEX}(,{_HEX}){{0,15}}$"},
    },
    {
        "name": "brand_tolerance",
        "in": "query",
        "description": (
            "With `brand`: the largest ΔE (Oklab distance x 100, the engine's metric) at which "
            "a palette color counts as on-brand"
        ),
        "schema": {"type": "number", "minimum": 0, "maximum": 100, "default": 5},
    },
    {
        "name": "brand_min_share",
        "in": "query",
        "description": "With `brand`: the on-brand share of the image needed to pass",
        "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
    },
]

ANALYSIS_PARAMS: list[dict[str, Any]] = [
    OPTION_PARAMS[0],  # colors: the size of each of the three palettes
    {
        "name": "crops",
        "in": "query",
        "description": (
            "Aspects (`W:H`, whole numbers 1-999, up to 8, comma-separated) to list a crop "
            "box for; default `1:1,16:9`"
        ),
        "schema": {"type": "string", "pattern": f"^{_ASPECT}(,{_ASPECT}){{0,7}}$"},
    },
]

_BINARY = {"schema": {"type": "string", "format": "binary"}}

IMAGE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/octet-stream": _BINARY,
        "image/jpeg": _BINARY,
        "image/png": _BINARY,
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}

OPTION_FIELDS: dict[str, Any] = {
    p["name"]: {**p["schema"], "description": p["description"]} for p in OPTION_PARAMS
}

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
}


COMMON_ERRORS = {"401": problem("Missing or invalid API key (only when API keys are configured)")}
