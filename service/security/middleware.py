"""Pure ASGI guards: security headers on every answer, and a deadline on each body read."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..problems import Problem

__all__ = ["BodyTimeoutMiddleware", "SecurityHeadersMiddleware", "page_policy"]

# The web UI loads only its own files; the API reference page has one inline script and one
# inline style, allowed by their hashes (computed from the page itself, so they stay right).
_UI_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def page_policy(page: Path) -> str:
    """The UI's Content-Security-Policy plus the hashes of ``page``'s inline script and style."""
    html = page.read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
            for body in found
            if body.strip()
        )

    return _UI_POLICY.replace("style-src 'self'", f"style-src 'self' {hashes('style')}").replace(
        "script-src 'self'", f"script-src 'self' {hashes('script')}"
    )


class SecurityHeadersMiddleware:
    """``nosniff``, ``Referrer-Policy`` and, on HTTPS, HSTS on every answer; pages (the UI and
    ``/docs``) also get a Content-Security-Policy and may not be framed."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int, docs_policy: str) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains".encode() if hsts_seconds else b""
        self.docs_policy = docs_policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if self.hsts and scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self.hsts))
        if path == "/docs":
            extra += [(b"content-security-policy", self.docs_policy), (b"x-frame-options", b"DENY")]
        elif not path.startswith("/v1/") and path not in _MACHINE_PATHS:
            extra += [
                (b"content-security-policy", _UI_POLICY.encode()),
                (b"x-frame-options", b"DENY"),
            ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_MACHINE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})


class BodyTimeoutMiddleware:
    """A request whose next body piece takes longer than ``seconds`` gets ``408``.

    The deadline runs while the app waits for the body, so a slow reader (the app busy, reads
    paused by flow control) is never blamed on the client.
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seconds = self.seconds
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                # After the body, receive() only waits for a disconnect (a streaming answer
                # listens for one as long as it streams): no deadline.
                return await receive()
            with anyio.move_on_after(seconds) as waited:
                message = await receive()
                body_done = message["type"] != "http.request" or not message.get("more_body")
            if waited.cancelled_caught:
                raise Problem(
                    408,
                    "body_timeout",
                    f"The request body stalled: no data for {seconds:g} s.",
                    limit_seconds=seconds,
                    headers={"Connection": "close"},
                )
            return message

        await self.app(scope, receive_in_time, send)
