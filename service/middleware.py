"""Pure ASGI middleware: request ids + metrics + access log, and API-key tenancy."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics
from .problems import Problem

__all__ = ["PUBLIC_TENANT", "AuthMiddleware", "RequestContextMiddleware"]

access_log = logging.getLogger("service.access")

PUBLIC_TENANT = "public"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``), times it and writes one JSON log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "request_id": request_id,
                            "method": method,
                            "path": scope["path"],
                            "status": status,
                            "ms": round(elapsed * 1000, 2),
                            "tenant": scope.get("tenant"),
                        }
                    )
                )


class AuthMiddleware:
    """Maps an API key to a tenant for ``/v1`` paths; no keys configured: one open tenant.

    The key comes from ``Authorization: Bearer <key>`` or ``X-API-Key``. Operational routes
    (health, metrics, docs, UI) stay open.
    """

    def __init__(
        self, app: ASGIApp, api_keys: Mapping[str, str], public_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.api_keys = dict(api_keys)
        # Paths that authenticate themselves (signed download links): no API key needed.
        self.public_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.api_keys:
            scope["tenant"] = PUBLIC_TENANT
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not path.startswith("/v1/") or path.startswith(self.public_prefixes):
            await self.app(scope, receive, send)
            return
        key = _header(scope, b"x-api-key")
        auth = _header(scope, b"authorization")
        if key is None and auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer":
                key = value.strip()
        tenant = self.api_keys.get(key) if key else None
        if tenant is None:
            await self._reject(scope, receive, send, missing=key is None)
            return
        scope["tenant"] = tenant

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The same URL answers differently per key: shared caches must not mix them.
                headers = list(message.get("headers", []))
                headers.append((b"vary", b"Authorization, X-API-Key"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_vary)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, *, missing: bool) -> None:
        from .problems import problem_response

        problem = Problem(
            401,
            "unauthorized" if missing else "invalid_api_key",
            "An API key is required (Authorization: Bearer <key> or X-API-Key)."
            if missing
            else "The API key is not valid.",
            headers={"WWW-Authenticate": 'Bearer realm="palette"'},
        )
        request_id = scope.get("request_id")
        response = problem_response(problem, request_id if isinstance(request_id, str) else None)
        await response(scope, receive, send)
