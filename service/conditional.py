"""RFC 9110 helpers: strong ETags, If-None-Match, single byte ranges, JSON responses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "if_match",
    "json_response",
    "none_match",
    "parse_range",
    "strong_etag",
]


def strong_etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:40] + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag.removeprefix("W/")


def none_match(request: Request, etag: str) -> bool:
    """True when ``If-None-Match`` matches ``etag`` (weak comparison, lists, ``*``)."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(_opaque(part) == _opaque(etag) for part in header.split(","))


def if_match(request: Request) -> Callable[[str], bool] | None:
    """``If-Match`` as a precondition on the current ETag (strong comparison, lists, ``*``);
    None when the request has none."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    candidates = {c.strip() for c in header.split(",")}

    def holds(etag: str) -> bool:
        return "*" in candidates or (etag in candidates and not etag.startswith("W/"))

    return holds


def not_modified(etag: str, headers: Mapping[str, str] | None = None) -> Response:
    all_headers = {"ETag": etag, **(headers or {})}
    return Response(status_code=304, headers=all_headers)


def json_response(
    request: Request,
    payload: Any,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    etag: str | None = None,
) -> Response:
    """JSON with a strong ETag of its bytes; a matching ``If-None-Match`` on GET gives 304."""
    data = body if body is not None else json.dumps(payload, separators=(",", ":")).encode()
    tag = etag or strong_etag(data)
    all_headers = {"ETag": tag, **(headers or {})}
    if status_code == 200 and request.method in ("GET", "HEAD") and none_match(request, tag):
        return not_modified(tag, headers)
    return Response(
        data, status_code=status_code, media_type="application/json", headers=all_headers
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """One ``bytes=`` range -> (start, end) inclusive; None to send it all; "unsatisfiable".

    Syntax we do not serve (several ranges, other units, garbage) is ignored, as RFC 9110
    allows: the whole representation is sent with 200.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            if not last.isdigit():
                return None
            length = int(last)
            if length == 0:
                return "unsatisfiable"
            return (max(0, size - length), size - 1) if size else "unsatisfiable"
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return (start, min(end, size - 1))
