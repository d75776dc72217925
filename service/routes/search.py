"""GET /v1/search: the caller's processed images with a color near the one asked for."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ..conditional import json_response
from ..jobs.interfaces import InvalidCursor
from ..options import parse_search
from ..problems import Problem
from ..search.service import SearchQuery
from ..state import app_state
from . import api_route, limit_param

__all__ = ["routes"]


async def search(request: Request) -> Response:
    state = app_state(request)
    if not state["runtime"].search.enabled:
        raise Problem(
            501,
            "search_unavailable",
            "Search by color is off on this server: encryption at rest is on, and the color "
            "index would keep every palette's colors unencrypted.",
        )
    color, max_delta_e = parse_search(request.query_params)
    cursor = request.query_params.get("cursor")
    query = SearchQuery(color, max_delta_e, limit_param(request, "bad_parameter"), cursor)
    try:
        items, next_cursor = await state["offload"](
            state["runtime"].search.find, request.scope["tenant"], query
        )
    except InvalidCursor:
        raise Problem(
            400, "bad_cursor", "The cursor is not one this server issued.", parameter="cursor"
        ) from None
    headers = {"Cache-Control": "no-cache"}
    next_url = None
    if next_cursor is not None:
        params = {"color": color, "max_delta_e": repr(max_delta_e)}
        if "limit" in request.query_params:
            params["limit"] = request.query_params["limit"]
        params["cursor"] = next_cursor
        next_url = f"/v1/search?{urlencode(params)}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    body = {
        "color": color,
        "max_delta_e": max_delta_e,
        "metric": "oklab_delta_e_x100",
        "items": items,
        "next_cursor": next_cursor,
        "next": next_url,
    }
    return json_response(request, body, headers=headers)


routes = [api_route("/v1/search", GET=search)]
