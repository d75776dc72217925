"""Everything the app shares between requests, started and stopped by the lifespan."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Engine
from .jobs.blobs import LocalBlobStore
from .jobs.interfaces import BlobStore, Clock, JobBackend, SystemClock, TransitionHook
from .jobs.retention import Sweeper
from .jobs.sqlite_store import SqliteStore
from .jobs.worker import WorkerPool
from .metrics import Metrics
from .settings import Settings

__all__ = ["Runtime"]

logger = logging.getLogger("service.runtime")


@dataclass
class Runtime:
    """The store, blobs, worker pool and limits one app instance runs with."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    hooks: list[TransitionHook] = field(default_factory=list)
    run_workers: bool = True
    engine: Engine | None = None
    store: JobBackend = field(init=False)
    """The backend the app uses (only ``start`` knows it is SQLite)."""
    store_path: Path = field(init=False)
    blobs: BlobStore = field(init=False)
    pool: WorkerPool | None = field(init=False, default=None)
    metrics: Metrics = field(default_factory=Metrics)
    draining: threading.Event = field(default_factory=threading.Event)
    _sweeper: Sweeper | None = field(init=False, default=None)
    _started: bool = field(init=False, default=False)

    def start(self) -> None:
        s = self.settings
        if self.engine is None:
            self.engine = Engine(s)
        data = s.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.store_path = data / "jobs.sqlite3"
        self.store = SqliteStore(
            self.store_path,
            clock=self.clock,
            retention_seconds=s.retention_seconds,
            idempotency_seconds=s.idempotency_seconds,
            cache_entries=s.palette_cache_entries,
        )
        for hook in self.hooks:
            self.store.add_transition_hook(hook)
        self.blobs = LocalBlobStore(data / "blobs")
        self.metrics.watch_jobs(self.store.counts)
        if self.run_workers:
            engine = self.engine
            self.pool = WorkerPool(
                self.store,
                self.blobs,
                extract=engine.extract,
                threads=s.workers,
                lease_seconds=s.lease_seconds,
                extract_kwargs=engine.extract_kwargs,
                archive_iter=engine.iter_archive,
                max_images_per_job=s.max_images_per_job,
                on_item=lambda status: self.metrics.images.labels(status, "job").inc(),
                on_job=lambda status: self.metrics.jobs_finished.labels(status).inc(),
            )
            self.pool.start()
        self._sweeper = Sweeper(self.store, self.blobs, self.clock, s.sweep_interval_seconds)
        self._sweeper.start()
        self._started = True

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
        if not self._started:
            return
        self.drain_workers()
        if self._sweeper is not None:
            self._sweeper.stop()
        self.store.close()
        self._started = False

    def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            self.store.ping()
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, don't raise: this is what readyz is for
            checks["store"] = f"error: {exc}"
        if self.run_workers:
            checks["workers"] = "ok" if self.pool is not None and self.pool.alive() else "down"
        checks["draining"] = self.draining.is_set()
        return checks
