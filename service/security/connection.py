"""Limits on the HTTP/1.1 request head that uvicorn's httptools protocol does not have.

Without them one client can send a header line of hundreds of megabytes (the parser joins
the pieces of a header name over and over: seconds of CPU per 100 MB, with the event loop
stalled for every other client) or keep a connection half-open forever by sending its head a
byte at a time. :func:`guarded_protocol` returns uvicorn's protocol with three bounds:

* the request line plus headers, in bytes (``431`` once over, checked after every read, so
  at most one read is parsed past the limit);
* the number of header fields (``431``);
* the time from a request's first byte to the end of its head (``408``).

Each answer is a problem document and closes the connection. Slow bodies are bounded where
the app reads them (:class:`service.security.middleware.BodyTimeoutMiddleware`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..problems import PROBLEM_TYPE_BASE

__all__ = ["guarded_protocol"]

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised inside a parser callback to stop the parser; the answer is already chosen."""


class _GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = 65536
    max_headers = 100
    head_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, dict[str, Any]] | None = None

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and self._refusal is None:
            self._refuse_head_size(self._head_bytes)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_headers:
            self._refusal = (
                431,
                "too_many_headers",
                {
                    "detail": f"The request has more than {self.max_headers} header fields.",
                    "limit_headers": self.max_headers,
                },
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_head_bytes:
            self._refusal = _head_size(self.max_head_bytes, size)
            raise _Refused
        self._end_head()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next bytes on this connection start the next request's head.
        self._in_head = True
        self._head_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, code, fields = self._refusal
        self._send_problem(status, code, fields)

    # -- refusals ---------------------------------------------------------------------------
    def _end_head(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head while the previous answer still streams: that answer's time
            # is not this client's delay; look again once more time has passed.
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)
            return
        self._send_problem(
            408,
            "header_timeout",
            {
                "detail": f"The request head did not arrive within {self.head_timeout_s:g} s.",
                "limit_seconds": self.head_timeout_s,
            },
        )

    def _refuse_head_size(self, size: int) -> None:
        status, code, fields = _head_size(self.max_head_bytes, size, at_least=True)
        self._send_problem(status, code, fields)

    def _send_problem(self, status: int, code: str, fields: dict[str, Any]) -> None:
        self._end_head()
        self._refusal = (status, code, fields)
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_BASE + code,
                "title": _REASONS[status].decode(),
                "status": status,
                "code": code,
                **fields,
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


def _head_size(limit: int, size: int, at_least: bool = False) -> tuple[int, str, dict[str, Any]]:
    actual = "actual_bytes_at_least" if at_least else "actual_bytes"
    return (
        431,
        "headers_too_large",
        {
            "detail": f"The request line and headers are over the limit of {limit:,} bytes.",
            "limit_bytes": limit,
            actual: size,
        },
    )


def guarded_protocol(
    *, max_head_bytes: int, max_headers: int, head_timeout_s: float
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these limits (``uvicorn.Config(http=...)``)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedHttpToolsProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "max_headers": max_headers,
            "head_timeout_s": head_timeout_s,
        },
    )
