"""The HTTP floor for ``bench_service.py``: uvicorn and Starlette doing only what every sync
palette request needs before and after the engine (read the body as a stream, hash it with
BLAKE3 chunk by chunk as the service does, join it, answer a JSON body of a palette's size).

Served the way ``palette serve`` serves (uvicorn, httptools, one event loop, glibc keeping
request-sized buffers on the heap: ``bench_service.start_http_floor`` sets the thresholds that
``palette serve`` sets with ``mallopt``), its server CPU per request is what the HTTP stack alone
costs on this machine: the part of the service's cost over the library that no change inside
the service can remove.
"""

from __future__ import annotations

import blake3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_ANSWER = b'{"colors":[{' + b" " * 2800 + b"}]}"  # about the size of a K=8 palette's body


async def _palette(request: Request) -> Response:
    digest = blake3.blake3()
    chunks = []
    async for chunk in request.stream():
        digest.update(chunk)
        chunks.append(chunk)
    body = b"".join(chunks)  # joined as the service joins it, for the same copy
    if not body:
        return Response(b"no body", status_code=400)
    return Response(_ANSWER, media_type="application/json", headers={"ETag": digest.hexdigest()})


app = Starlette(routes=[Route("/v1/palette", _palette, methods=["POST"])])
