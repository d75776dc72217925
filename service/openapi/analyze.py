"""``/v1/analyze``."""

from __future__ import annotations

from typing import Any

from .components import ANALYSIS_PARAMS, COMMON_ERRORS, HEADERS, IMAGE_BODY, json_ref, problem

__all__ = ["paths"]


def paths() -> dict[str, Any]:
    return {
        "/v1/analyze": {
            "post": {
                "operationId": "analyzeImage",
                "summary": "Quality score, subject, crops and palettes of one image (synchronous)",
                "description": (
                    "The same body, limits and formats as `POST /v1/palette`. Answers the "
                    "no-reference quality score (0-100) with each component (0-1) beside its "
                    "raw measure, the salient subject's box, a crop box per aspect in "
                    "`crops`, and three palettes: the whole image, the subject's colors "
                    "(pixels weighted by saliency) and the background's; and the `theme` of "
                    "the whole image's palette (tonal ramps, light and dark schemes, each role "
                    "pair with its WCAG contrast). Repeated requests are answered from the "
                    "cache (image digest and options)."
                ),
                "parameters": ANALYSIS_PARAMS,
                "requestBody": IMAGE_BODY,
                "responses": {
                    "200": json_ref("Analysis", "The analysis", {"ETag": HEADERS["ETag"]}),
                    "400": problem("Bad colors or crops, empty body or malformed multipart"),
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
    }
