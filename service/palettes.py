"""The synchronous palette path: content-addressed cache in front of the library."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio

from .engine import Engine
from .jobs.interfaces import PaletteCache
from .metrics import Metrics
from .offload import Offload
from .options import canonical_query
from .problems import Problem
from .security.budget import ByteBudget
from .uploads import Body

__all__ = ["PaletteResult", "PaletteService", "WriteBehindCache"]

logger = logging.getLogger("service.palettes")


@dataclass(frozen=True)
class PaletteResult:
    digest: str
    query: str
    etag: str
    body: bytes

    @property
    def location(self) -> str:
        return f"/v1/palettes/{self.digest}?{self.query}"


class WriteBehindCache:
    """A front for the store's palette cache: recent palettes in memory, writes batched.

    ``peek`` never touches the store, so the event loop can answer repeated images without a
    thread hop. ``put`` returns at once; one writer thread stores everything put since its last
    write in one transaction, so request threads never wait on (or contend for) the store's
    write lock. Entries stay readable from memory until they are stored. A palette is derived
    data: one lost in a crash is computed again.
    """

    BATCH_SECONDS = 0.2

    def __init__(self, backing: PaletteCache, hot_entries: int, stored_entries: int) -> None:
        self.backing = backing
        self.hot_entries = hot_entries
        self.stored_entries = stored_entries
        # Keys the store holds, where it can say: a new image (the common case) is then a miss
        # without a store lookup. Only a hint: a key missing here means computing again.
        keys = backing.cache_keys()
        self._known: set[str] | None = None if keys is None else set(keys)
        self._hot: OrderedDict[str, bytes] = OrderedDict()
        self._pending: dict[str, bytes] = {}  # put, not yet stored
        self._writing: dict[str, bytes] = {}  # being stored now
        self._lock = threading.Lock()
        self._wake: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: stop after this
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_loop, name="palette-cache-writer", daemon=True
        )
        self._writer.start()

    def peek(self, key: str) -> bytes | None:
        """Memory only: safe on the event loop."""
        with self._lock:
            body = self._hot.get(key)
            if body is not None:
                self._hot.move_to_end(key)
                return body
            return self._pending.get(key) or self._writing.get(key)

    def get(self, key: str) -> bytes | None:
        """Memory, then the store (blocking: call from a worker thread)."""
        body = self.peek(key)
        if body is None and (self._known is None or key in self._known):
            body = self.backing.cache_get(key)
            if body is not None:
                with self._lock:
                    self._remember(key, body)
        return body

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the palette cache is closed")
            self._remember(key, body)
            self._pending[key] = body
        if self._known is not None and self.stored_entries > 0:
            self._known.add(key)
        self._wake.put(False)

    def close(self) -> None:
        """Store what is pending, then stop the writer."""
        with self._lock:
            self._closed = True
        self._wake.put(True)
        self._writer.join()

    def _remember(self, key: str, body: bytes) -> None:
        if self.hot_entries <= 0:
            return
        self._hot[key] = body
        self._hot.move_to_end(key)
        while len(self._hot) > self.hot_entries:
            self._hot.popitem(last=False)

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            stop = self._wake.get()
            if not stop:
                # Let a few more arrive: one transaction for several palettes costs little
                # more than one for a single palette.
                time.sleep(self.BATCH_SECONDS)
            while not self._wake.empty():
                stop = self._wake.get() or stop
            with self._lock:
                self._writing, self._pending = self._pending, {}
            if not self._writing:
                continue
            try:
                self.backing.cache_put(self._writing)
                if self._known is not None and len(self._known) > 2 * self.stored_entries:
                    # The store drops old entries on its own: forget them here too.
                    self._known = set(self.backing.cache_keys() or ()) | self._writing.keys()
            except Exception:  # a cache write must not kill the writer
                logger.exception(
                    "palette cache write failed; %d entries not stored", len(self._writing)
                )
            with self._lock:
                self._writing = {}


class PaletteService:
    def __init__(
        self,
        engine: Engine,
        cache: PaletteCache,
        metrics: Metrics,
        threads: int,
        cache_entries: int = 10_000,
        *,
        offload: Offload,
        max_bytes_in_flight: int = 256 * 1024 * 1024,
    ) -> None:
        self.engine = engine
        self.body_budget = ByteBudget(max_bytes_in_flight)
        """Sync bodies held in memory, all requests together."""
        self.offload = offload
        # The store keeps ``cache_entries`` palettes; memory the most recent of them.
        self.cache = WriteBehindCache(cache, min(1024, cache_entries), cache_entries)
        self.metrics = metrics
        # The threads that decode, with their own queue: a thread that finishes an image takes
        # the next one at once, without waiting for the event loop to hand it over (under load
        # the loop is busy receiving bodies, and every hand-over through it left a core idle).
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="palette-sync")
        # Requests computing a key right now: a second identical request waits for the first
        # instead of computing it again.
        self._inflight: dict[str, anyio.Event] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.cache.close()

    def _keys(
        self, tenant: str, digest: str, options: dict[str, Any], kind: str = "palette"
    ) -> tuple[str, str, str]:
        query = canonical_query(options)
        # The ETag covers the library version too: a new engine may render different bytes.
        # Palettes keep the key they always had; other kinds of result are named in it.
        named = digest if kind == "palette" else f"{kind}|{digest}"
        etag = (
            '"'
            + hashlib.sha256(f"{self.engine.version}|{named}?{query}".encode()).hexdigest()[:40]
            + '"'
        )
        cache_key = hashlib.sha256(f"{tenant}|{etag}".encode()).hexdigest()
        return query, etag, cache_key

    async def extract(self, tenant: str, body: Body, options: dict[str, Any]) -> PaletteResult:
        """The palette of ``body`` (``POST /v1/palette``)."""
        return await self._answer(tenant, body, options, "palette", self.engine.palette_json)

    async def analyze(self, tenant: str, body: Body, options: dict[str, Any]) -> PaletteResult:
        """The analysis of ``body`` (``POST /v1/analyze``): quality, subject, crops, palettes.

        Same path as a palette (memory, the store's cache, the decode threads), under keys of
        its own. ``analysis/2``: the answer gained ``theme``, and bodies cached under the first
        key (the library version unchanged) lack it."""
        return await self._answer(tenant, body, options, "analysis/2", self.engine.analysis_json)

    async def _answer(
        self,
        tenant: str,
        body: Body,
        options: dict[str, Any],
        kind: str,
        render: Callable[[bytes | bytearray, dict[str, Any]], bytes],
    ) -> PaletteResult:
        if not body.data:
            raise Problem(400, "empty_body", "The request has no image bytes.")
        query, etag, cache_key = self._keys(tenant, body.digest, options, kind)
        while True:
            cached = self.cache.peek(cache_key)
            if cached is not None:
                self.metrics.cache.labels("hit").inc()
                return PaletteResult(body.digest, query, etag, cached)
            pending = self._inflight.get(cache_key)
            if pending is None:
                break
            await pending.wait()  # the same image is being computed: take its result
        done = self._inflight[cache_key] = anyio.Event()
        try:
            # One trip to a worker thread: the store's cache (after a restart the result may
            # be there), else the library.
            rendered, computed = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._load_or_compute, cache_key, body.data, options, render
            )
        except Exception:
            self.metrics.images.labels("failed", "sync").inc()
            raise
        finally:
            del self._inflight[cache_key]
            done.set()
        if computed:
            self.metrics.cache.labels("miss").inc()
            self.metrics.images.labels("succeeded", "sync").inc()
        else:
            self.metrics.cache.labels("hit").inc()
        return PaletteResult(body.digest, query, etag, rendered)

    def _load_or_compute(
        self,
        cache_key: str,
        data: bytes,
        options: dict[str, Any],
        render: Callable[[bytes | bytearray, dict[str, Any]], bytes],
    ) -> tuple[bytes, bool]:
        stored = self.cache.get(cache_key)
        if stored is not None:
            return stored, False
        rendered = render(data, options)
        self.cache.put(cache_key, rendered)
        return rendered, True

    async def lookup(self, tenant: str, digest: str, options: dict[str, Any]) -> PaletteResult:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise Problem(404, "palette_not_found", "No palette at this address.")
        query, etag, cache_key = self._keys(tenant, digest, options)
        body = self.cache.peek(cache_key)
        if body is None:
            body = await self.offload(self.cache.get, cache_key)
        if body is None:
            raise Problem(
                404,
                "palette_not_found",
                "No cached palette for this image and these options; POST the image to "
                "/v1/palette.",
            )
        return PaletteResult(digest, query, etag, body)
