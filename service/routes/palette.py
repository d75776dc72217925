"""POST /v1/palette (sync) and GET /v1/palettes/{digest} (the content-addressed cache)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..brand import with_brand
from ..conditional import json_response
from ..options import parse_brand, parse_options
from ..palettes import PaletteResult
from ..state import app_state
from . import api_route
from .sync import BodyReader, answer_within_limits

__all__ = ["routes"]


def _render(request: Request, result: PaletteResult) -> Response:
    return json_response(
        request,
        None,
        body=result.body,
        etag=result.etag,
        headers={"Content-Location": result.location, "Cache-Control": "private, max-age=0"},
    )


async def create_palette(request: Request) -> Response:
    state = app_state(request)
    settings = state["runtime"].settings
    options = parse_options(
        request.query_params,
        max_colors=settings.max_colors,
        default_pixel_budget=settings.pixel_budget,
    )
    brand = parse_brand(request.query_params)

    async def answer(read: BodyReader) -> Response:
        body = await read()
        tenant = request.scope["tenant"]
        result = await state["palettes"].extract(tenant, body, options)
        # Searchable by color from now on (written behind; a repeat is not written again).
        state["runtime"].search.record_sync(tenant, result.location, result.body)
        return _render(request, result if brand is None else with_brand(result, brand))

    return await answer_within_limits(request, answer, "palette")


async def get_palette(request: Request) -> Response:
    state = app_state(request)
    settings = state["runtime"].settings
    options = parse_options(
        request.query_params,
        max_colors=settings.max_colors,
        default_pixel_budget=settings.pixel_budget,
    )
    brand = parse_brand(request.query_params)
    result = await state["palettes"].lookup(
        request.scope["tenant"], request.path_params["digest"], options
    )
    return _render(request, result if brand is None else with_brand(result, brand))


routes = [
    api_route("/v1/palette", POST=create_palette),
    api_route("/v1/palettes/{digest}", GET=get_palette),
]
