"""Prometheus metrics, one registry per app (so the factory can build many apps per process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .jobs.interfaces import JOB_STATUSES

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _JobsCollector(Collector):
    """Jobs by status and queue depth, read from the store at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            counts = self._counts()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is busy
            return
        jobs = GaugeMetricFamily("palette_jobs", "Jobs by status", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "palette_queue_depth", "Jobs waiting for a worker", value=counts.get("queued", 0)
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "palette_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "palette_http_request_duration_seconds",
            "HTTP request latency (to the last body byte)",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter(
            "palette_images_processed",
            "Images processed, by outcome (succeeded, failed, skipped) and path (sync, job)",
            ["outcome", "path"],
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "palette_jobs_finished",
            "Jobs that reached a final status in this process",
            ["status"],
            registry=self.registry,
        )
        self.cache = Counter(
            "palette_palette_cache",
            "Sync palette cache lookups",
            ["result"],
            registry=self.registry,
        )

        self.rate_limited = Counter(
            "palette_rate_limited",
            "Requests refused with 429 by the per-client rate limits",
            registry=self.registry,
        )
        self.rate_limit_factor = Gauge(
            "palette_rate_limit_factor",
            "Multiplier on every rate limit: 1, or the tightening factor while saturated",
            registry=self.registry,
        )
        self.rate_limit_factor.set(1.0)

    def watch_jobs(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobsCollector(counts))

    def watch_workers(self, running: Callable[[], int]) -> None:
        """This process's job threads: how many jobs (or chunks of one) they hold right now."""
        gauge = Gauge(
            "palette_worker_tasks_running",
            "Jobs or chunks of jobs this process is running now",
            registry=self.registry,
        )
        gauge.set_function(running)
