"""The synchronous palette path: content-addressed cache in front of the library."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from anyio import CapacityLimiter

from .engine import Engine
from .jobs.interfaces import PaletteCache
from .metrics import Metrics
from .options import canonical_query
from .problems import Problem

__all__ = ["PaletteResult", "PaletteService"]


@dataclass(frozen=True)
class PaletteResult:
    digest: str
    query: str
    etag: str
    body: bytes

    @property
    def location(self) -> str:
        return f"/v1/palettes/{self.digest}?{self.query}"


class PaletteService:
    def __init__(
        self, engine: Engine, cache: PaletteCache, limiter: CapacityLimiter, metrics: Metrics
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.limiter = limiter
        self.metrics = metrics
        # Requests computing a key right now: a second identical request waits for the first
        # instead of computing it again.
        self._inflight: dict[str, anyio.Event] = {}

    def _keys(self, tenant: str, digest: str, options: dict[str, Any]) -> tuple[str, str, str]:
        query = canonical_query(options)
        # The ETag covers the library version too: a new engine may render different bytes.
        etag = (
            '"'
            + hashlib.sha256(f"{self.engine.version}|{digest}?{query}".encode()).hexdigest()[:40]
            + '"'
        )
        cache_key = hashlib.sha256(f"{tenant}|{etag}".encode()).hexdigest()
        return query, etag, cache_key

    async def extract(
        self, tenant: str, data: bytes | bytearray, options: dict[str, Any]
    ) -> PaletteResult:
        if not data:
            raise Problem(400, "empty_body", "The request has no image bytes.")
        kind = self.engine.sniff(bytes(data[:512]))
        if kind is not None and kind[0] == "archive":
            raise Problem(
                415,
                "unsupported_format",
                f"POST /v1/palette takes one image; send archives ({kind[1]}) to POST /v1/jobs.",
            )

        def look_up() -> tuple[str, str, str, str, bytes | None]:
            # One trip to a worker thread: hashing a few MB would stall the event loop.
            digest = hashlib.sha256(data).hexdigest()
            query, etag, cache_key = self._keys(tenant, digest, options)
            return digest, query, etag, cache_key, self.cache.cache_get(cache_key)

        digest, query, etag, cache_key, cached = await anyio.to_thread.run_sync(look_up)
        while True:
            if cached is not None:
                self.metrics.cache.labels("hit").inc()
                return PaletteResult(digest, query, etag, cached)
            pending = self._inflight.get(cache_key)
            if pending is None:
                break
            await pending.wait()  # the same image is being computed: take its result
            cached = await anyio.to_thread.run_sync(self.cache.cache_get, cache_key)
        self.metrics.cache.labels("miss").inc()
        done = self._inflight[cache_key] = anyio.Event()
        try:
            body = await self._compute(data, options, cache_key)
        finally:
            del self._inflight[cache_key]
            done.set()
        return PaletteResult(digest, query, etag, body)

    async def _compute(
        self, data: bytes | bytearray, options: dict[str, Any], cache_key: str
    ) -> bytes:
        def compute() -> bytes:
            body = self.engine.palette_json(data, options)
            self.cache.cache_put(cache_key, body)
            return body

        try:
            body = await anyio.to_thread.run_sync(compute, limiter=self.limiter)
        except Exception:
            self.metrics.images.labels("failed", "sync").inc()
            raise
        self.metrics.images.labels("succeeded", "sync").inc()
        return body

    async def lookup(self, tenant: str, digest: str, options: dict[str, Any]) -> PaletteResult:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise Problem(404, "palette_not_found", "No palette at this address.")
        query, etag, cache_key = self._keys(tenant, digest, options)
        body = await anyio.to_thread.run_sync(self.cache.cache_get, cache_key)
        if body is None:
            raise Problem(
                404,
                "palette_not_found",
                "No cached palette for this image and these options; POST the image to "
                "/v1/palette.",
            )
        return PaletteResult(digest, query, etag, body)
