"""Library errors as JSON fields, the same in problem documents and in job results."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from palette_native.errors import PaletteError

__all__ = ["error_fields", "jsonable"]


def jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` with every value JSON can not hold turned into its text."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = str(value)
        out[key] = value
    return out


def error_fields(exc: PaletteError) -> dict[str, Any]:
    """``{"code", "detail", **details}`` of a library error."""
    return {"code": exc.code, "detail": exc.message, **jsonable(exc.details)}
