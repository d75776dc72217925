"""POST /v1/palette (sync) and GET /v1/palettes/{digest} (the content-addressed cache)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..conditional import json_response
from ..options import parse_options
from ..palettes import PaletteResult
from ..problems import Problem
from ..state import app_state
from ..uploads import Body, admit, read_body, read_multipart
from . import api_route

__all__ = ["routes"]


class _MemorySink:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def close(self) -> str:
        return ""

    def abort(self) -> None:
        self.chunks.clear()


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
    service = state["palettes"]
    sniff = service.engine.sniff
    options = parse_options(
        request.query_params,
        max_colors=settings.max_colors,
        default_pixel_budget=settings.pixel_budget,
    )
    if request.headers.get("content-type", "").startswith("multipart/"):
        chunks: list[bytes] = []
        parsed = await read_multipart(
            request,
            limit=settings.max_sync_bytes,
            new_sink=lambda seq, kind: _MemorySink(chunks),
            sniff=sniff,
            max_files=1,
            accept_archives=False,
            offload=state["offload"],
        )
        if not parsed.files:
            raise Problem(400, "no_files", "Send the image as a 'file' part or as the raw body.")
        part = parsed.files[0]
        body = Body(b"".join(chunks), part.digest, (part.kind, part.format))
    else:
        body = await read_body(request, settings.max_sync_bytes, sniff)
        if body.data:
            admit(body.kind, "body", accept_archives=False)
    result = await service.extract(request.scope["tenant"], body, options)
    return _render(request, result)


async def get_palette(request: Request) -> Response:
    state = app_state(request)
    settings = state["runtime"].settings
    options = parse_options(
        request.query_params,
        max_colors=settings.max_colors,
        default_pixel_budget=settings.pixel_budget,
    )
    result = await state["palettes"].lookup(
        request.scope["tenant"], request.path_params["digest"], options
    )
    return _render(request, result)


routes = [
    api_route("/v1/palette", POST=create_palette),
    api_route("/v1/palettes/{digest}", GET=get_palette),
]
