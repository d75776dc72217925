"""POST /v1/palette (sync) and GET /v1/palettes/{digest} (the content-addressed cache)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
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
    def __init__(self, chunks: list[bytes], reserve: Callable[[int], None]) -> None:
        self.chunks = chunks
        self.reserve = reserve

    def write(self, chunk: bytes) -> None:
        self.reserve(len(chunk))
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
    guards = state["runtime"].settings.security
    budget = state["palettes"].body_budget
    held = 0

    def reserve(n: int) -> None:
        # Bodies are held in memory until decoded: all of them together stay under a cap.
        nonlocal held
        if not budget.take(n):
            raise Problem(
                503,
                "server_busy",
                "Too many image bytes are being processed at once; retry shortly.",
                limit_bytes_in_flight=budget.limit,
                headers={"Retry-After": "1"},
            )
        held += n

    try:
        with anyio.move_on_after(guards.sync_deadline_seconds):
            return await _create_palette(request, reserve)
        raise Problem(
            503,
            "deadline_exceeded",
            f"The palette was not ready within {guards.sync_deadline_seconds:g} s; retry later "
            "or send the image as a job.",
            limit_seconds=guards.sync_deadline_seconds,
            headers={"Retry-After": "5"},
        )
    finally:
        budget.give(held)


async def _create_palette(request: Request, reserve: Callable[[int], None]) -> Response:
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
            new_sink=lambda seq, kind: _MemorySink(chunks, reserve),
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
        body = await read_body(request, settings.max_sync_bytes, sniff, reserve)
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
