"""The component schemas of the service's own resources."""

from __future__ import annotations

from typing import Any

__all__ = ["schemas"]


def schemas() -> dict[str, Any]:
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
                "brand": {"$ref": "#/components/schemas/BrandConformance"},
            },
        },
        "BrandConformance": {
            "type": "object",
            "description": "Present when the request had `brand`",
            "required": [
                "colors",
                "tolerance",
                "min_share",
                "metric",
                "matches",
                "share_within_tolerance",
                "passed",
            ],
            "properties": {
                "colors": {"type": "array", "items": {"type": "string"}},
                "tolerance": {"type": "number"},
                "min_share": {"type": "number"},
                "metric": {"type": "string"},
                "matches": {
                    "type": "array",
                    "description": "One per palette color, in the palette's order",
                    "items": {
                        "type": "object",
                        "required": ["hex", "fraction", "nearest", "delta_e", "within_tolerance"],
                        "properties": {
                            "hex": {"type": "string"},
                            "fraction": {"type": "number"},
                            "nearest": {"type": "string", "description": "The nearest brand color"},
                            "delta_e": {"type": "number"},
                            "within_tolerance": {"type": "boolean"},
                        },
                    },
                },
                "share_within_tolerance": {"type": "number", "minimum": 0, "maximum": 1},
                "passed": {"type": "boolean"},
            },
        },
        "Analysis": _analysis(),
        "Theme": _theme(),
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
                            "analysis": {
                                "$ref": "#/components/schemas/Analysis",
                                "description": "Jobs created with analyze=true",
                            },
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



def _analysis() -> dict[str, Any]:
    box = {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4}
    palette = {"$ref": "#/components/schemas/Palette"}
    component = {
        "type": "object",
        "required": ["value", "raw", "unit"],
        "properties": {
            "value": {"type": "number", "minimum": 0, "maximum": 1},
            "raw": {"type": ["number", "null"]},
            "unit": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    return {
        "type": "object",
        "required": [
            "width",
            "height",
            "quality",
            "subject",
            "crops",
            "palette",
            "subject_palette",
            "background_palette",
        ],
        "properties": {
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "quality": {
                "type": "object",
                "required": ["score", "components"],
                "properties": {
                    "score": {"type": "number", "minimum": 0, "maximum": 100},
                    "components": {
                        "type": "object",
                        "description": (
                            "sharpness, noise, exposure, compression, contrast, "
                            "colorfulness, resolution"
                        ),
                        "additionalProperties": component,
                    },
                },
            },
            "subject": {
                "type": "object",
                "required": ["box"],
                "properties": {
                    "box": {**box, "description": "left, top, width, height in source pixels"},
                    "center": {"type": "array", "items": {"type": "number"}},
                    "share": {"type": "number"},
                },
            },
            "crops": {
                "type": "object",
                "description": "Aspect (`W:H`) -> left, top, width, height",
                "additionalProperties": box,
            },
            "palette": palette,
            "subject_palette": palette,
            "background_palette": palette,
            "analyzed_pixels": {"type": "integer"},
            "options": {"type": "object"},
            "theme": {
                "$ref": "#/components/schemas/Theme",
                "description": "POST /v1/analyze only (not job items)",
            },
        },
    }


def _theme() -> dict[str, Any]:
    hex_color = {"type": "string", "pattern": "^#[0-9a-f]{6}$"}
    roles = {
        "type": "object",
        "description": "Role (primary, on_primary, surface, on_surface, ...) -> color",
        "additionalProperties": hex_color,
    }
    return {
        "type": "object",
        "description": (
            "palette_native.theme of the whole image's palette: tonal ramps and light and "
            "dark schemes; every listed role pair meets its WCAG 2 contrast"
        ),
        "required": ["source", "variant", "ramps", "schemes", "pairs"],
        "properties": {
            "source": {**hex_color, "description": "The seed color"},
            "variant": {"type": "string"},
            "ramps": {
                "type": "object",
                "description": (
                    "primary, secondary, tertiary, neutral, neutral_variant, error: "
                    "Oklch hue and chroma, and the color at each tone (CIE L*)"
                ),
                "additionalProperties": {
                    "type": "object",
                    "required": ["hue", "chroma", "tones"],
                    "properties": {
                        "hue": {"type": "number"},
                        "chroma": {"type": "number"},
                        "tones": {"type": "object", "additionalProperties": hex_color},
                    },
                },
            },
            "schemes": {
                "type": "object",
                "required": ["light", "dark"],
                "properties": {"light": roles, "dark": roles},
            },
            "pairs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["role", "foreground", "background", "required_ratio", "ratio"],
                    "properties": {
                        "role": {"type": "string", "description": "<scheme>:<fg>/<bg>"},
                        "foreground": hex_color,
                        "background": hex_color,
                        "required_ratio": {"type": "number"},
                        "ratio": {"type": "number", "description": "WCAG 2 contrast ratio"},
                    },
                },
            },
        },
    }
