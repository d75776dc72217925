"""``GET /v1/audit``: the caller's tenant's audit entries, newest first, filtered and paged."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ..problems import Problem
from ..routes import api_route, limit_param
from ..state import app_state
from .interfaces import AuditQuery

__all__ = ["routes"]


def _time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return (
            float(raw)
            if raw.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        )
    except ValueError:
        raise Problem(
            400,
            "bad_parameter",
            f"{name} must be an RFC 3339 time or epoch seconds.",
            parameter=name,
        ) from None


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise Problem(
            400, "bad_cursor", "The cursor is not one this server issued.", parameter="cursor"
        )
    return int(raw)


async def list_audit(request: Request) -> Response:
    state = app_state(request)
    q = request.query_params
    query = AuditQuery(
        tenant=request.scope["tenant"],
        action=q.get("action"),
        actor=q.get("actor"),
        since=_time(request, "since"),
        until=_time(request, "until"),
        limit=limit_param(request, "bad_parameter"),
        before=_cursor(request),
    )
    entries = await state["offload"](state["audit"].store.query, query)
    next_cursor = str(entries[-1].seq) if len(entries) == query.limit else None
    return JSONResponse(
        {"data": [e.to_public() for e in entries], "next_cursor": next_cursor},
        headers={"Cache-Control": "no-store"},
    )


routes: list[BaseRoute] = [api_route("/v1/audit", GET=list_audit)]
