"""What every synchronous image route shares: the body in memory under a byte budget, read
as raw bytes or one multipart ``file`` part, through the format allow-list, within the sync
deadline (``POST /v1/palette``, ``POST /v1/analyze``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import Response

from ..problems import Problem
from ..state import app_state
from ..uploads import Body, admit, read_body, read_multipart

__all__ = ["BodyReader", "answer_within_limits"]

BodyReader = Callable[[], Awaitable[Body]]
"""Reads the request's image (call it after the query is validated: nothing is read before)."""


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


async def _read_image(request: Request, reserve: Callable[[int], None]) -> Body:
    state = app_state(request)
    settings = state["runtime"].settings
    sniff = state["palettes"].engine.sniff
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
        return Body(b"".join(chunks), part.digest, (part.kind, part.format))
    body = await read_body(request, settings.max_sync_bytes, sniff, reserve)
    if body.data:
        admit(body.kind, "body", accept_archives=False)
    return body


async def answer_within_limits(
    request: Request, answer: Callable[[BodyReader], Awaitable[Response]], what: str
) -> Response:
    """``answer(read)`` under the sync deadline, with every body byte it reads counted against
    the budget shared by all sync requests (and given back when it returns)."""
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
            return await answer(lambda: _read_image(request, reserve))
        raise Problem(
            503,
            "deadline_exceeded",
            f"The {what} was not ready within {guards.sync_deadline_seconds:g} s; retry later "
            "or send the image as a job.",
            limit_seconds=guards.sync_deadline_seconds,
            headers={"Retry-After": "5"},
        )
    finally:
        budget.give(held)
