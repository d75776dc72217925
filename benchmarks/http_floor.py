"""The HTTP floor for ``bench_service.py``: uvicorn and Starlette doing only what every sync
palette request needs before and after the engine (read the body as a stream, hash it with
BLAKE3 chunk by chunk as the service does, join it, answer a JSON body of a palette's size).

Served the way ``palette serve`` serves (uvicorn, httptools, one event loop, glibc told to keep
request-sized buffers on the heap), its server CPU per request is what the HTTP stack alone
costs on this machine: the part of the service's cost over the library that no change inside
the service can remove.
"""

from __future__ import annotations

import blake3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.cli import _keep_transient_buffers_mapped

_ANSWER = b'{"colors":[{' + b" " * 2800 + b"}]}"  # about the size of a K=8 palette's body


async def _palette(request: Request) -> Response:
    digest = blake3.blake3()
    chunks = []
    async for chunk in request.stream():
        digest.update(chunk)
        chunks.append(chunk)
    body = b"".join(chunks)
    assert body, "the load generator sends a body"
    return Response(_ANSWER, media_type="application/json", headers={"ETag": digest.hexdigest()})


_keep_transient_buffers_mapped()
app = Starlette(routes=[Route("/v1/palette", _palette, methods=["POST"])])
