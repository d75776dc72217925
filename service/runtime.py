"""What one process runs: the backends, job workers, the retention sweeper and webhooks.

``create_app`` (``palette serve``) and ``palette worker`` both build a :class:`Runtime`; its
``start`` opens the backends through the one factory (:func:`service.backends.open_backends`),
so every process that changes jobs writes their events and relays them to webhooks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .backends import Backends, open_backends
from .clock import Clock, SystemClock
from .engine import Engine
from .jobs.retention import Sweeper
from .jobs.worker import WorkerPool
from .jobs.interfaces import JobNotFound
from .metrics import Metrics
from .search.service import PaletteSearch
from .settings import Settings
from .webhooks import WebhookSystem

__all__ = ["Runtime"]

logger = logging.getLogger("service.runtime")

BackendFactory = Callable[[Settings, Clock], Backends]


class Runtime:
    """Started and stopped by the app lifespan, or by ``palette worker``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        extract: Callable[..., Any] | None = None,
        run_workers: bool = True,
        backends: BackendFactory = open_backends,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = Engine(settings, extract)
        self.run_workers = run_workers
        self.metrics = Metrics()
        self.draining = threading.Event()
        self._open = backends
        self.pool: WorkerPool | None = None
        self._sweeper: Sweeper | None = None
        self._backends: Backends | None = None
        self._webhooks: WebhookSystem | None = None
        self._search: PaletteSearch | None = None

    @property
    def backends(self) -> Backends:
        assert self._backends is not None, "the runtime is not started"
        return self._backends

    @property
    def webhooks(self) -> WebhookSystem:
        assert self._webhooks is not None, "the runtime is not started"
        return self._webhooks

    @property
    def search(self) -> PaletteSearch:
        assert self._search is not None, "the runtime is not started"
        return self._search

    def _index_results(self, job_id: str, palettes: list[tuple[int, dict[str, Any]]]) -> None:
        try:
            job = self.backends.jobs.get(job_id)
        except JobNotFound:
            return  # deleted already
        self.search.record_job(job.tenant, job_id, palettes, job.expires_at)

    def start(self) -> None:
        s = self.settings
        b = self._backends = self._open(s, self.clock)
        self._search = PaletteSearch(
            b.search, b.clock, s.retention_seconds, enabled=b.encryption is None
        )
        self.metrics.watch_jobs(b.jobs.counts)
        # Before the workers: a transition right after a restart is relayed too.
        self._webhooks = WebhookSystem(
            s.webhooks, b.webhook_endpoints, b.webhook_outbox, b.events, b.clock
        )
        self._webhooks.start()
        if self.run_workers:
            engine = self.engine
            self.pool = WorkerPool(
                b.jobs,
                b.blobs,
                extract=engine.extract,
                threads=s.workers,
                lease_seconds=s.lease_seconds,
                extract_kwargs=engine.extract_kwargs,
                analysis_for=engine.job_analysis,
                open_archive=engine.open_archive,
                max_images_per_job=s.max_images_per_job,
                on_item=lambda status: self.metrics.images.labels(status, "job").inc(),
                on_job=lambda status: self.metrics.jobs_finished.labels(status).inc(),
                job_timeout_seconds=s.security.job_timeout_seconds,
                on_results=self._index_results,
            )
            self.pool.start()
            self.metrics.watch_workers(self.pool.busy)
        self._sweeper = Sweeper(
            b.jobs, b.blobs, b.housekeeping, s.sweep_interval_seconds, b.locks
        )
        self._sweeper.start()

    def begin_drain(self) -> None:
        """SIGTERM: readyz turns 503 and new jobs are refused; workers stop claiming."""
        if not self.draining.is_set():
            logger.info("draining: refusing new jobs, finishing running images")
        self.draining.set()
        if self.pool is not None:
            self.pool.draining.set()

    def drain_workers(self) -> None:
        self.begin_drain()
        if self.pool is not None:
            self.pool.drain(self.settings.drain_grace_seconds)

    def stop(self) -> None:
        if self._backends is None:
            return
        self.drain_workers()
        if self._sweeper is not None:
            self._sweeper.stop()
        if self._webhooks is not None:
            self._webhooks.stop()
        if self._search is not None:
            self._search.close()
        self._backends.close()
        self._backends = None

    def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            self.backends.jobs.ping()
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, don't raise: this is what readyz is for
            checks["store"] = f"error: {exc}"
        if self.run_workers:
            checks["workers"] = "ok" if self.pool is not None and self.pool.alive() else "down"
        checks["draining"] = self.draining.is_set()
        return checks
