"""The app factory: ``create_app(settings)`` (``uvicorn --factory service.app:create_app``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from . import signed_urls
from .backends import open_backends
from .clock import Clock
from .jobs.service import JobService
from .middleware import RequestContextMiddleware
from .offload import Offload
from .palettes import PaletteService
from .problems import EXCEPTION_HANDLERS
from .routes import analyze as analyze_routes
from .routes import jobs as job_routes
from .routes import ops as ops_routes
from .routes import palette as palette_routes
from .routes import search as search_routes
from .runtime import BackendFactory, Runtime
from .security import wiring as security
from .settings import Settings
from .state import AppState
from .webhooks import api as webhook_routes

__all__ = ["create_app"]

logger = logging.getLogger("service")

UI_DIR = Path(__file__).resolve().parent / "ui"
# Threads for blocking calls from requests (store, blobs, DNS, multipart parsing).
_OFFLOAD_THREADS = 32


def create_app(
    settings: Settings | None = None,
    *,
    routes: Sequence[BaseRoute] = (),
    clock: Clock | None = None,
    run_workers: bool = True,
    extract: Callable[..., Any] | None = None,
    backends: BackendFactory | None = None,
) -> Starlette:
    """Build the service.

    ``routes`` are added before the UI mount; ``clock`` is the one time source;
    ``run_workers=False`` serves the API only (workers run elsewhere); ``extract`` replaces the
    library call (fault injection in tests); ``backends`` replaces
    :func:`service.backends.open_backends`.
    """
    settings = settings or Settings.from_env()
    runtime = Runtime(
        settings,
        clock=clock,
        extract=extract,
        run_workers=run_workers,
        backends=backends or open_backends,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        logger.info("settings in force: %s", settings.public_view())
        offload = Offload(_OFFLOAD_THREADS)
        await offload(runtime.start)
        b = runtime.backends
        palettes = PaletteService(
            runtime.engine,
            b.palette_cache,
            runtime.metrics,
            threads=settings.workers,
            cache_entries=settings.palette_cache_entries,
            offload=offload,
            max_bytes_in_flight=settings.security.max_sync_bytes_in_flight,
        )
        guards = await offload(security.open_guards, settings, b, runtime.metrics, offload)
        state: AppState = {
            "runtime": runtime,
            "offload": offload,
            "palettes": palettes,
            "jobs": JobService(settings, b, runtime.engine, runtime.pool, runtime.draining, offload),
            "webhooks": runtime.webhooks,
            "signer": signed_urls.UrlSigner(
                signed_urls.signing_keys(settings, b.secrets), b.clock
            ),
            "auth": guards.auth,
            "keys": guards.keys,
            "audit": guards.audit,
            "limiter": guards.limiter,
        }
        try:
            yield state
        finally:
            with anyio.CancelScope(shield=True):
                await offload(guards.close)
                await offload(palettes.close)
                await offload(runtime.stop)

    all_routes: list[BaseRoute] = [
        *ops_routes.routes,
        *palette_routes.routes,
        *analyze_routes.routes,
        *job_routes.routes,
        *search_routes.routes,
        *webhook_routes.routes,
        *signed_urls.routes,
        *security.routes,
        *routes,
    ]
    if UI_DIR.is_dir():
        # Last: everything the API does not answer falls through to the web UI.
        all_routes.append(Mount("/", app=StaticFiles(directory=UI_DIR, html=True), name="ui"))

    app = Starlette(
        routes=all_routes,
        middleware=[
            Middleware(RequestContextMiddleware, metrics=runtime.metrics),
            *security.middleware(settings, all_routes),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
