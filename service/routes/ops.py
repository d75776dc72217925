"""Operational routes: liveness, readiness, metrics, the OpenAPI document and its page."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..openapi import build_spec
from . import api_route

__all__ = ["routes"]

_DOCS_PAGE = Path(__file__).resolve().parent.parent / "apidocs.html"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    runtime = request.state.runtime
    checks = runtime.readiness()
    ready = (
        checks.get("store") == "ok"
        and checks.get("workers", "ok") == "ok"
        and not checks["draining"]
    )
    headers = {"Cache-Control": "no-store"}
    if not ready:
        headers["Retry-After"] = "5"
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=headers,
    )


async def metrics(request: Request) -> Response:
    registry = request.state.runtime.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return Response(_spec_bytes(), media_type="application/json")


@lru_cache(maxsize=1)
def _spec_bytes() -> bytes:
    return json.dumps(build_spec(), indent=1).encode()


async def docs(request: Request) -> Response:
    return HTMLResponse(_DOCS_PAGE.read_text(encoding="utf-8"))


routes = [
    api_route("/healthz", GET=healthz),
    api_route("/readyz", GET=readyz),
    api_route("/metrics", GET=metrics),
    api_route("/openapi.json", GET=openapi),
    api_route("/docs", GET=docs),
]
