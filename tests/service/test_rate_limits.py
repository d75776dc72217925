"""Per-client rate limits, their IETF headers, tightening under saturation, and the per-tenant
active-job quota."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx
import pytest
from limits.storage import MemoryStorage

from service.ratelimit.limiter import RateLimiter
from service.ratelimit.storage import SweptMemoryStorage
from service.ratelimit.saturation import Saturation

KEYS = "alpha:alpha-key-000000000001,beta:beta-key-0000000000001"
ALPHA = {"x-api-key": "alpha-key-000000000001"}
BETA = {"x-api-key": "beta-key-0000000000001"}


@pytest.mark.e2e
def test_a_burst_then_429_then_recovery_and_clients_are_independent(
    server_factory: Any, h: Any
) -> None:
    server = server_factory({"PALETTE_API_KEYS": KEYS, "PALETTE_RATE_LIMITS": "5/second;8/minute"})
    with httpx.Client(base_url=server.url, timeout=10) as c:
        burst = [c.get("/v1/jobs", headers=ALPHA) for _ in range(7)]
        assert [r.status_code for r in burst] == [200] * 5 + [429] * 2
        first = burst[0]
        assert first.headers["ratelimit-policy"] == (
            '"5-per-1-second";q=5;w=1, "8-per-1-minute";q=8;w=60'
        )
        assert first.headers["ratelimit"] == '"5-per-1-second";r=4;t=1'
        refused = burst[5]
        body = h.problem(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "1" and body["retry_after_seconds"] == 1
        assert refused.headers["ratelimit"] == '"5-per-1-second";r=0;t=1'
        # Another client is counted on its own.
        assert c.get("/v1/jobs", headers=BETA).status_code == 200
        # After the one-second window: accepted again, until the per-minute limit (8).
        time.sleep(1.1)
        again = [c.get("/v1/jobs", headers=ALPHA) for _ in range(4)]
        assert [r.status_code for r in again] == [200, 200, 200, 429]
        assert again[-1].headers["ratelimit"].startswith('"8-per-1-minute";r=0;t=')
        assert 50 <= int(again[-1].headers["retry-after"]) <= 60
        # Probes and metrics are exempt (and carry no RateLimit fields).
        probes = [c.get("/healthz") for _ in range(20)]
        assert all(r.status_code == 200 and "ratelimit" not in r.headers for r in probes)
        metrics = c.get("/metrics").text
    assert re.search(r"^palette_rate_limited_total 3\.0$", metrics, re.MULTILINE)
    assert re.search(r"^palette_rate_limit_factor 1\.0$", metrics, re.MULTILINE)


@pytest.mark.e2e
def test_failed_authentication_is_limited_by_address(server_factory: Any, h: Any) -> None:
    server = server_factory({"PALETTE_API_KEYS": KEYS, "PALETTE_RATE_LIMITS": "3/minute"})
    with httpx.Client(base_url=server.url, timeout=10) as c:
        guesses = [c.get("/v1/jobs", headers={"x-api-key": f"guess-{n}"}) for n in range(5)]
    assert [r.status_code for r in guesses] == [401, 401, 401, 429, 429]


def _slow_archive(h: Any, images: int) -> bytes:
    """Many small images: seconds of work for one worker thread, little to upload."""
    return h.make_zip({f"{n}.jpg": h.make_jpeg(n) for n in range(images)})


@pytest.mark.e2e
def test_limits_tighten_while_jobs_queue_up_and_recover(server_factory: Any, h: Any) -> None:
    server = server_factory(
        {
            "PALETTE_RATE_LIMITS": "40/second",
            "PALETTE_SATURATION_QUEUED_JOBS": "2",
            "PALETTE_RATE_LIMIT_TIGHTEN_FACTOR": "0.5",
            "PALETTE_WORKERS": "1",
        }
    )
    archive = _slow_archive(h, 400)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        locations = [
            h.submit(c, [("a.zip", archive)], exact="true").headers["location"] for _ in range(5)
        ]

        def factor() -> float:
            found = re.search(r"^palette_rate_limit_factor (\S+)$", c.get("/metrics").text, re.MULTILINE)
            assert found is not None
            return float(found.group(1))

        h.wait_for(lambda: factor() == 0.5, timeout=10)
        assert c.get("/v1/jobs").headers["ratelimit-policy"] == '"20-per-1-second";q=20;w=1'
        for location in locations:
            h.wait_job(c, location, timeout=120)
        h.wait_for(lambda: factor() == 1.0, timeout=10)
        assert c.get("/v1/jobs").headers["ratelimit-policy"] == '"40-per-1-second";q=40;w=1'
    assert "rate limits tightened" in server.log() and "rate limits restored" in server.log()


@pytest.mark.e2e
def test_a_tenant_has_a_quota_of_active_jobs(server_factory: Any, h: Any) -> None:
    server = server_factory(
        {"PALETTE_API_KEYS": KEYS, "PALETTE_MAX_ACTIVE_JOBS_PER_TENANT": "1", "PALETTE_WORKERS": "1"}
    )
    archive = _slow_archive(h, 400)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        first = h.submit(c, [("a.zip", archive)], headers=ALPHA, exact="true")
        assert first.status_code == 202
        second = h.submit(c, [("b.jpg", h.make_jpeg(1))], headers=ALPHA)
        body = h.problem(second, 429, "too_many_active_jobs")
        assert body["limit_active_jobs"] == 1 and body["actual_active_jobs"] == 1
        assert second.headers["retry-after"]
        # Another tenant is not held back by alpha's job.
        assert h.submit(c, [("c.jpg", h.make_jpeg(2))], headers=BETA).status_code == 202
        h.wait_job(c, first.headers["location"], timeout=120, headers=ALPHA)
        assert h.submit(c, [("b.jpg", h.make_jpeg(1))], headers=ALPHA).status_code == 202


def test_the_limiter_scales_every_limit_by_the_factor() -> None:
    limiter = RateLimiter("10/second;100/minute", MemoryStorage())
    assert limiter.hit("a").policy == (
        '"10-per-1-second";q=10;w=1, "100-per-1-minute";q=100;w=60'
    )
    limiter.factor = 0.25
    tight = [limiter.hit("b") for _ in range(3)]
    assert tight[0].policy == '"2-per-1-second";q=2;w=1, "25-per-1-minute";q=25;w=60'
    assert [d.allowed for d in tight] == [True, True, False]
    assert not RateLimiter("", MemoryStorage()).enabled


def test_the_embedded_counters_start_no_thread_per_request_and_still_forget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = SweptMemoryStorage(interval=0.05)
    limiter = RateLimiter("3/second;100/minute", storage)
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    # Requests spaced wider than limits' own 10 ms expiry timer: it would start one per request.
    decisions = []
    for _ in range(6):
        decisions.append(limiter.hit("paced"))
        time.sleep(0.015)
    assert started == []
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    # The sweeper forgets the per-second entries once their window has passed; the per-minute
    # ones (the three accepted requests) stay.
    def lengths() -> list[int]:
        return sorted(len(events) for events in storage.events.values() if events)

    assert lengths() == [3, 3]
    deadline = time.monotonic() + 5
    while lengths() != [3] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lengths() == [3]
    assert limiter.hit("paced").allowed  # a new second: accepted again


def test_saturation_tightens_on_a_long_queue_or_busy_cores_and_recovers() -> None:
    queued, cpu = [0], [0.0]
    changes: list[tuple[float, str]] = []
    s = Saturation(
        queued_jobs=lambda: queued[0],
        queue_limit=10,
        cpu_limit=0.9,
        tighten_factor=0.5,
        on_change=lambda f, why: changes.append((f, why)),
        cpu_seconds=lambda: cpu[0],
    )
    assert s.sample() == 1.0
    queued[0] = 12
    assert s.sample() == 0.5 and "12 jobs queued" in changes[-1][1]
    queued[0] = 0
    assert s.sample() == 1.0 and changes[-1] == (1.0, "")
    # Every core busy since the last sample.
    time.sleep(0.05)
    cpu[0] += 0.05 * s.cores
    assert s.sample() == 0.5 and "CPU" in changes[-1][1]
    assert len(changes) == 3
