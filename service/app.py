"""The app factory: ``create_app(settings)`` (``uvicorn --factory service.app:create_app``)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from .engine import Engine
from .jobs.interfaces import Clock, SystemClock, TransitionHook
from .jobs.service import JobService
from .middleware import AuthMiddleware, RequestContextMiddleware
from .palettes import PaletteService
from .problems import EXCEPTION_HANDLERS
from .routes import jobs as job_routes
from .routes import ops as ops_routes
from .routes import palette as palette_routes
from .runtime import Runtime
from .settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger("service")

UI_DIR = Path(__file__).resolve().parent / "ui"


def _webhooks_module() -> Any | None:
    """``service.webhooks`` when that package is installed (it is optional)."""
    if importlib.util.find_spec("service.webhooks") is None:
        return None
    return importlib.import_module("service.webhooks")


def _extension_routes(module: Any | None) -> list[BaseRoute]:
    if module is None:
        return []
    found = getattr(module, "routes", None)
    if found is None:
        return []
    return list(found() if callable(found) else found)


def create_app(
    settings: Settings | None = None,
    *,
    routes: Sequence[BaseRoute] = (),
    hooks: Sequence[TransitionHook] = (),
    clock: Clock | None = None,
    run_workers: bool = True,
    extract: Callable[..., Any] | None = None,
) -> Starlette:
    """Build the service.

    ``routes`` are added before the UI mount (as are ``service.webhooks.routes()`` when that
    package exists); ``hooks`` are registered as job-store transition hooks; ``clock`` is the one
    time source; ``run_workers=False`` serves the API only (workers run elsewhere).
    """
    settings = settings or Settings.from_env()
    runtime = Runtime(
        settings, clock=clock or SystemClock(), hooks=list(hooks), run_workers=run_workers
    )
    if extract is not None:
        runtime.engine = Engine(settings, extract)
    webhooks = _webhooks_module()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        logger.info("settings in force: %s", settings.public_view())
        system = None
        if webhooks is not None and hasattr(webhooks, "WebhookSystem"):
            # webhooks (issue #4): hooked in before runtime.start() starts the workers and the
            # reaper, so a transition right after a restart still writes its events; the one
            # clock is shared.
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            system = await anyio.to_thread.run_sync(
                lambda: webhooks.WebhookSystem(
                    settings.data_dir / "jobs.sqlite3", settings.data_dir, clock=runtime.clock.now
                )
            )
            runtime.hooks.append(system.on_transition)
        await anyio.to_thread.run_sync(runtime.start)
        if system is not None:
            assert runtime.store_path == settings.data_dir / "jobs.sqlite3"
            app.state.webhooks = system
            system.start()
        assert runtime.engine is not None
        palettes = PaletteService(
            runtime.engine,
            runtime.store,
            runtime.metrics,
            threads=settings.workers,
            cache_entries=settings.palette_cache_entries,
        )
        state = {
            "runtime": runtime,
            "palettes": palettes,
            "jobs": JobService(
                settings,
                runtime.store,
                runtime.blobs,
                runtime.engine,
                runtime.pool,
                runtime.draining,
            ),
        }
        try:
            yield state
        finally:
            with anyio.CancelScope(shield=True):
                if system is not None:
                    await anyio.to_thread.run_sync(system.stop)
                await anyio.to_thread.run_sync(palettes.close)
                await anyio.to_thread.run_sync(runtime.stop)

    all_routes: list[BaseRoute] = [
        *ops_routes.routes,
        *palette_routes.routes,
        *job_routes.routes,
        *_extension_routes(webhooks),
        *routes,
    ]
    if UI_DIR.is_dir():
        # Last: everything the API does not answer falls through to the web UI.
        all_routes.append(Mount("/", app=StaticFiles(directory=UI_DIR, html=True), name="ui"))

    app = Starlette(
        routes=all_routes,
        middleware=[
            Middleware(RequestContextMiddleware, metrics=runtime.metrics),
            Middleware(
                AuthMiddleware,
                api_keys=settings.api_keys,
                public_prefixes=tuple(getattr(webhooks, "PUBLIC_PATH_PREFIXES", ())),
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
