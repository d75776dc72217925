"""When the service is saturated: the job queue is long, or the process uses (nearly) every core.

Sampled once a second on a thread of its own; the rate limiter reads :attr:`factor` (1.0, or the
stated tightening factor while saturated) and ``/metrics`` shows it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["Saturation"]

log = logging.getLogger("service.ratelimit")


class Saturation:
    def __init__(
        self,
        *,
        queued_jobs: Callable[[], int],
        queue_limit: int,
        cpu_limit: float,
        tighten_factor: float,
        on_change: Callable[[float, str], None],
        interval_s: float = 1.0,
        cpu_seconds: Callable[[], float] = time.process_time,
    ) -> None:
        self._queued_jobs = queued_jobs
        self.queue_limit = queue_limit
        self.cpu_limit = cpu_limit
        self.tighten_factor = tighten_factor
        self._on_change = on_change
        self.interval_s = interval_s
        self._cpu_seconds = cpu_seconds
        self.cores = os.cpu_count() or 1
        self.factor = 1.0
        self.reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, float] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="saturation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # a store hiccup must not end the sampling
                log.exception("saturation sample failed")

    def sample(self) -> float:
        """Measure once; returns the factor now in force."""
        reasons = []
        queued = self._queued_jobs()
        if queued >= self.queue_limit:
            reasons.append(f"{queued} jobs queued")
        now, cpu = time.monotonic(), self._cpu_seconds()
        if self._last is not None and now > self._last[0]:
            share = (cpu - self._last[1]) / (now - self._last[0]) / self.cores
            if share >= self.cpu_limit:
                reasons.append(f"CPU at {share:.0%} of {self.cores} cores")
        self._last = (now, cpu)
        factor = self.tighten_factor if reasons else 1.0
        if factor != self.factor:
            self.reason = ", ".join(reasons)
            log.warning(
                "rate limits %s (%s)",
                "tightened" if reasons else "restored",
                self.reason or "no longer saturated",
            )
            self.factor = factor
            self._on_change(factor, self.reason)
        return factor
