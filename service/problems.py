"""RFC 9457 problem documents and the one exception-handler map of the app."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from palette_native import errors
from palette_native.errors import PaletteError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .errors import jsonable

__all__ = ["EXCEPTION_HANDLERS", "Problem", "problem_response"]

logger = logging.getLogger("service.problems")

PROBLEM_TYPE_BASE = "https://palette-engine.dev/problems/"

# Library error codes -> HTTP status (RFC 9110 semantics, per /work/shared/HTTP-CONVENTIONS.md).
_LIBRARY_STATUS: dict[str, int] = {
    "unsupported_format": 415,
    "decode_error": 422,
    "image_too_large": 422,
    "archive_error": 422,
    "bad_parameter": 400,
    "canceled": 409,
}

_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error the service answers with: status, stable ``code``, a sentence, extra fields."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        if request_id:
            body["request_id"] = request_id
        return body


def problem_from_library_error(exc: PaletteError) -> Problem:
    status = _LIBRARY_STATUS.get(exc.code)
    if status is None:
        # Subclass codes we do not list (e.g. specific archive limit codes) follow their class.
        if isinstance(exc, errors.UnsupportedFormatError):
            status = 415
        elif isinstance(exc, errors.BadParameterError):
            status = 400
        else:
            status = 422
    return Problem(status, exc.code, exc.message, **jsonable(exc.details))


def problem_response(problem: Problem, request_id: str | None = None) -> Response:
    headers = dict(problem.headers)
    return Response(
        json.dumps(problem.to_dict(request_id)).encode(),
        status_code=problem.status,
        media_type="application/problem+json",
        headers=headers,
    )


def _request_id(request: Request) -> str | None:
    value = request.scope.get("request_id")
    return value if isinstance(value, str) else None


async def _handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, _request_id(request))


async def _handle_library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PaletteError)
    return problem_response(problem_from_library_error(exc), _request_id(request))


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = exc.detail if exc.detail else _TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404:
        detail = f"No resource at {request.url.path}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    problem = Problem(exc.status_code, code, str(detail), headers=exc.headers)
    return problem_response(problem, _request_id(request))


async def _handle_disconnect(request: Request, exc: Exception) -> Response:
    # The client went away mid-body: nothing to answer, and not a server error worth a trace.
    logger.info("client disconnected during the request body", extra={"path": request.url.path})
    problem = Problem(400, "client_disconnected", "The request body ended early.")
    return problem_response(problem, _request_id(request))


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", extra={"request_id": _request_id(request)})
    problem = Problem(500, "internal_error", "The server failed to answer; the error is logged.")
    return problem_response(problem, _request_id(request))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Problem: _handle_problem,
    PaletteError: _handle_library_error,
    HTTPException: _handle_http_exception,
    ClientDisconnect: _handle_disconnect,
    Exception: _handle_unexpected,
}
