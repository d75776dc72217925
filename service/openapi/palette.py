"""``/v1/palette`` and ``/v1/palettes/{digest}``."""

from __future__ import annotations

from typing import Any

from .components import (
    BRAND_PARAMS,
    COMMON_ERRORS,
    HEADERS,
    IF_NONE_MATCH,
    IMAGE_BODY,
    OPTION_PARAMS,
    json_ref,
    problem,
)

__all__ = ["paths"]


def paths() -> dict[str, Any]:
    return {
    "/v1/palette": {
        "post": {
            "operationId": "createPalette",
            "summary": "Extract the palette of one image (synchronous)",
            "description": (
                "The body is the image bytes (any content type but multipart), or "
                "multipart/form-data with one `file` part. The type is detected from "
                "the bytes. Results are cached by image digest and options. With `brand`, "
                "the palette carries a `brand` block: each color's nearest brand color and "
                "its ΔE, the share of the image within `brand_tolerance`, and whether that "
                "share reaches `brand_min_share`."
            ),
            "parameters": [*OPTION_PARAMS, *BRAND_PARAMS],
            "requestBody": IMAGE_BODY,
            "responses": {
                "200": json_ref(
                    "Palette",
                    "The palette",
                    {"ETag": HEADERS["ETag"], "Content-Location": HEADERS["Content-Location"]},
                ),
                "400": problem("Bad option or brand color, empty body or malformed multipart"),
                **COMMON_ERRORS,
                "413": problem("Body over max_sync_bytes (limit_bytes)"),
                "415": problem("Not an image (by magic bytes), or an archive"),
                "422": problem(
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
                *OPTION_PARAMS,
                *BRAND_PARAMS,
                IF_NONE_MATCH,
            ],
            "responses": {
                "200": json_ref("Palette", "The palette", {"ETag": HEADERS["ETag"]}),
                "304": {"description": "Not modified (If-None-Match matched)"},
                "400": problem("Bad option or brand color"),
                **COMMON_ERRORS,
                "404": problem("Not in the cache"),
            },
        }
    },
    }
