"""The OpenAPI 3.1 description of the service, written by hand to say exactly what it does.

One module per part: :mod:`palette`, :mod:`analyze`, :mod:`jobs`, :mod:`search`, :mod:`ops` and
:mod:`webhooks` give paths, :mod:`schemas` (and :mod:`webhooks`) the component schemas,
:mod:`components` what they share.
"""

from __future__ import annotations

from typing import Any

from . import analyze, jobs, ops, palette, schemas, search, security, webhooks

__all__ = ["build_spec"]

DESCRIPTION = (
    "Color palettes from images. `POST /v1/palette` answers at once (`POST /v1/analyze` "
    "adds a quality score, the subject and crops); `POST /v1/jobs` queues images and ZIP "
    "archives. Errors are RFC 9457 problem documents with a "
    "stable `code`; limit errors name the limit and the value. Finished jobs are "
    "kept for the retention period (default 7 days), then answer 404."
)


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "PaletteEngine", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "paths": _behind_the_gate(
            {
                **palette.paths(),
                **analyze.paths(),
                **jobs.paths(),
                **search.paths(),
                **ops.paths(),
                **webhooks.paths(),
                **security.paths(),
            }
        ),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                **schemas.schemas(),
                **search.schemas(),
                **webhooks.schemas(),
                **security.schemas(),
            },
        },
        "webhooks": webhooks.webhooks(),
    }


def _behind_the_gate(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation that needs a credential (all but the open ones) can also answer what
    the gate answers: 401, 403, 408 and 429; signed links only 429."""
    for path, item in paths.items():
        for operation in item.values():
            if operation.get("security") != [{}]:
                operation["responses"] = {**security.GATE_RESPONSES, **operation["responses"]}
            elif path.startswith("/v1/"):  # signed links: rate limited by address
                operation["responses"].setdefault("429", security.GATE_RESPONSES["429"])
    return paths
