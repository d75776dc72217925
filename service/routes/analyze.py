"""POST /v1/analyze: quality, subject, crops and palettes of one image (sync)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..conditional import json_response
from ..options import parse_analysis_options
from ..state import app_state
from . import api_route
from .sync import BodyReader, answer_within_limits

__all__ = ["routes"]


async def create_analysis(request: Request) -> Response:
    state = app_state(request)
    options = parse_analysis_options(
        request.query_params, max_colors=state["runtime"].settings.max_colors
    )

    async def answer(read: BodyReader) -> Response:
        body = await read()
        result = await state["palettes"].analyze(request.scope["tenant"], body, options)
        # No Content-Location: analyses are cached for repeated POSTs, not given an address.
        return json_response(
            request,
            None,
            body=result.body,
            etag=result.etag,
            headers={"Cache-Control": "private, max-age=0"},
        )

    return await answer_within_limits(request, answer, "analysis")


routes = [api_route("/v1/analyze", POST=create_analysis)]
