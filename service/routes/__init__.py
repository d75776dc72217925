"""Route tables. Each module exposes ``routes``; handlers parse, call a service, render."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..problems import Problem

Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(**handlers: Endpoint) -> Endpoint:
    """One endpoint per path that dispatches on the method.

    The route takes every method and answers 405 (with the full ``Allow`` list) itself: the UI
    is mounted at ``/`` last and would otherwise catch methods the API route does not take.
    """
    allowed = set(handlers) | ({"HEAD"} if "GET" in handlers else set())

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        return await handler(request)

    endpoint.allowed_methods = frozenset(allowed)  # type: ignore[attr-defined]
    return endpoint


_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]


def api_route(path: str, **handlers: Endpoint) -> Route:
    return Route(path, by_method(**handlers), methods=_EVERY_METHOD)


def choice_param(request: Request, name: str, choices: Sequence[str], code: str) -> str | None:
    """``?name=`` as one of ``choices`` (None when absent); ``code`` names the error."""
    value = request.query_params.get(name)
    if value is not None and value not in choices:
        raise Problem(400, code, f"{name} must be one of {', '.join(choices)}.", parameter=name)
    return value


def limit_param(request: Request, code: str) -> int:
    """``?limit=`` as a page size from 1 to 200 (50 when absent); ``code`` names the error."""
    raw = request.query_params.get("limit")
    try:
        limit = 50 if raw is None else int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 200:
        raise Problem(
            400, code, "limit must be an integer from 1 to 200.", parameter="limit"
        )
    return limit
