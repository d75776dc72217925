"""Webhooks: Standard Webhooks delivery of job events with retries, dead letters and batching.

The service wires this package in three places:

* ``WebhookSystem.on_transition`` is registered as a job-store transition hook, so the messages a
  job's change causes are written in the same SQLite transaction as the change;
* ``routes()`` adds the endpoint-management, message and signed-download routes to the app;
* ``WebhookSystem.start()`` / ``stop()`` run from the app lifespan (the sender threads).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from service.webhooks.delivery import Deliverer
from service.webhooks.settings import WebhookSettings
from service.webhooks.signing import generate_secret
from service.webhooks.store import Executor, WebhookStore

__all__ = ["PUBLIC_PATH_PREFIXES", "WebhookSettings", "WebhookStore", "WebhookSystem", "routes"]

CALLBACK_SECRET_FILE = "webhook_callback_secret"

# Signed download links carry their own credential (the signature), so the API-key check skips
# them (read by the service's auth middleware).
PUBLIC_PATH_PREFIXES = ("/v1/downloads/",)

log = logging.getLogger("palette.webhooks")


def load_or_create_secret(path: Path) -> str:
    """A ``whsec_`` secret kept in the data dir (0600), created on first use."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = generate_secret()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    try:
        os.link(tmp, path)  # first writer wins if two processes start at once
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


class WebhookSystem:
    """The outbox store plus the sender threads, for one process."""

    def __init__(
        self,
        db_path: str | Path,
        data_dir: str | Path,
        settings: WebhookSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = settings if settings is not None else WebhookSettings.from_env()
        # Logged before the data-dir secret fills in, so the log says where the secret comes from.
        log.info("webhook settings in force: %s", settings.public())
        if not settings.callback_secret:
            secret = load_or_create_secret(Path(data_dir) / CALLBACK_SECRET_FILE)
            settings = dataclasses.replace(settings, callback_secret=secret)
        self.settings = settings
        self.store = WebhookStore(db_path, settings, clock)
        self.store.create_schema()
        self.deliverer = Deliverer(self.store)

    def on_transition(self, tx: Executor, job: dict[str, Any], event_type: str) -> None:
        """Job-store transition hook: runs inside the store's transaction."""
        if event_type.startswith("job."):
            self.store.enqueue_job_event(tx, job, event_type)

    def start(self) -> None:
        self.deliverer.start()

    def stop(self) -> None:
        self.deliverer.stop()

    def wake(self) -> None:
        self.deliverer.wake()

    def alive(self) -> bool:
        return self.deliverer.alive()


def routes() -> list[BaseRoute]:
    """Every route this package adds to the app (webhooks and signed downloads)."""
    from service import signed_urls
    from service.webhooks.api import ROUTES

    return [*ROUTES, *signed_urls.ROUTES]
