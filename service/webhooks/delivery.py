"""The sender: one thread relays job events into the outbox and claims due messages; a bounded
pool signs them, POSTs them and records each attempt."""

from __future__ import annotations

import email.utils
import logging
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ..clock import Clock
from ..egress import EgressRefused, pinned_client
from ..jobs.interfaces import EventLog
from .events import destination_key
from .interfaces import Claimed, Outcome, WebhookOutbox
from .settings import WebhookSettings
from .signing import webhook_headers

log = logging.getLogger("palette.webhooks")

USER_AGENT = "PaletteEngine-Webhooks/1"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as delay-seconds or an HTTP-date -> seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify(response: httpx.Response, latency_ms: float, now: float) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(code, latency_ms, None, success=True)
    if 300 <= code < 400:
        where = response.headers.get("location", "")
        return Outcome(code, latency_ms, f"redirect not followed (Location: {where[:200]})", False)
    if code == 410:
        return Outcome(code, latency_ms, "410 Gone: endpoint disabled", False, gone=True)
    retry_after = None
    if code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    return Outcome(code, latency_ms, f"HTTP {code}", False, retry_after_s=retry_after)


class RetryPolicy:
    """When a failed message is tried again: the schedule with jitter, or the receiver's
    ``Retry-After`` (capped); None when it is a dead letter."""

    def __init__(self, settings: WebhookSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()

    def retry_delay(self, tries_done: int) -> float | None:
        """Seconds until the next try after ``tries_done`` failed tries, or None when exhausted."""
        schedule = self.settings.retry_schedule
        if tries_done > len(schedule):
            return None
        base = schedule[tries_done - 1]
        j = self.settings.jitter
        return max(0.0, base * self._rng.uniform(1.0 - j, 1.0 + j))

    def next_try_in(self, tries_done: int, outcome: Outcome) -> float | None:
        delay = None if outcome.gone else self.retry_delay(tries_done)
        if delay is not None and outcome.retry_after_s is not None:
            delay = min(max(outcome.retry_after_s, 0.0), self.settings.retry_after_cap_s)
        return delay


# Events relayed per pass; a larger backlog is worked through over the following passes.
RELAY_BATCH = 500
CONSUMER = "webhooks"


class Deliverer:
    """Owns the dispatch thread and a bounded pool of sender threads."""

    def __init__(
        self,
        settings: WebhookSettings,
        outbox: WebhookOutbox,
        events: EventLog,
        clock: Clock,
        policy: RetryPolicy,
    ) -> None:
        self.outbox = outbox
        self.events = events
        self.clock = clock
        self.policy = policy
        self.settings = settings
        self.owner = "sender-" + secrets.token_hex(6)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._by_destination: dict[str, int] = {}  # sends in flight, per destination_key
        self._by_tenant: dict[str, int] = {}  # sends in flight, per tenant
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._client = pinned_client(
            self.settings.egress,
            timeout=self.settings.timeout_s,
            headers=[("user-agent", USER_AGENT)],
        )

    # The lease outlives one attempt's timeout, so a live sender never loses its message, and a
    # crashed one's message becomes due again soon after.
    @property
    def lease_s(self) -> float:
        return self.settings.timeout_s + 5.0

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(
            self.settings.concurrency, thread_name_prefix="webhook-send"
        )
        self._thread = threading.Thread(target=self._run, name="webhook-dispatch", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_housekeeping = -1e18
        while not self._stop.is_set():
            try:
                self.relay_events()
                self.outbox.form_batches()
                with self._lock:
                    busy = dict(self._by_destination)
                    tenants = dict(self._by_tenant)
                free = self.settings.concurrency - sum(busy.values())
                if free > 0:
                    claimed = self.outbox.claim_due(
                        self.owner,
                        free,
                        self.lease_s,
                        busy,
                        self.settings.per_endpoint_concurrency,
                        tenants,
                        self.settings.per_tenant,
                    )
                    for message in claimed:
                        key = destination_key(message.endpoint_id, message.url)
                        with self._lock:
                            self._by_destination[key] = self._by_destination.get(key, 0) + 1
                            self._by_tenant[message.tenant] = (
                                self._by_tenant.get(message.tenant, 0) + 1
                            )
                        assert self._pool is not None
                        self._pool.submit(self._send_and_release, message, key)
                if time.monotonic() - last_housekeeping > self.settings.housekeeping_interval_s:
                    last_housekeeping = time.monotonic()
                    self.outbox.purge()
            except Exception:  # a locked or briefly unavailable database must not end the loop
                log.exception("webhook dispatch loop error")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def relay_events(self) -> None:
        """Job events -> outbox messages. At least once: a crash before the acknowledgement
        relays the events again, and the outbox writes nothing for an event id it has seen."""
        events = self.events.read(CONSUMER, RELAY_BATCH)
        for event in events:
            self.outbox.relay(event)
        self.events.ack(CONSUMER, events)

    def _send_and_release(self, message: Claimed, key: str) -> None:
        try:
            self.deliver(message)
        except Exception:
            log.exception("webhook delivery error for %s", message.id)
        finally:
            with self._lock:
                for counts, name in ((self._by_destination, key), (self._by_tenant, message.tenant)):
                    left = counts.get(name, 1) - 1
                    if left > 0:
                        counts[name] = left
                    else:
                        counts.pop(name, None)
            self._wake.set()

    def deliver(self, message: Claimed) -> str:
        """One attempt: sign with this attempt's timestamp, POST, record; returns the new status."""
        started_wall = self.clock.now()
        body = message.body.encode()
        headers = webhook_headers(message.secrets, message.id, int(started_wall), body)
        started = time.perf_counter()
        try:
            # Streamed and closed unread: the receiver's body is of no use, and a huge one must
            # not be pulled into memory.
            with self._client.stream(
                "POST", message.url, content=body, headers=headers
            ) as response:
                latency_ms = (time.perf_counter() - started) * 1000.0
                outcome = classify(response, latency_ms, self.clock.now())
        except EgressRefused as exc:
            outcome = Outcome(
                None, (time.perf_counter() - started) * 1000.0, f"refused: {exc}", False
            )
        except httpx.TimeoutException:
            outcome = Outcome(
                None,
                (time.perf_counter() - started) * 1000.0,
                f"timed out after {self.settings.timeout_s:g} s",
                False,
            )
        except httpx.HTTPError as exc:
            outcome = Outcome(
                None,
                (time.perf_counter() - started) * 1000.0,
                f"{type(exc).__name__}: {exc}"[:300],
                False,
            )
        retry_in = None if outcome.success else self.policy.next_try_in(message.tries + 1, outcome)
        status = self.outbox.record_attempt(message, self.owner, outcome, started_wall, retry_in)
        log.info(
            "webhook %s -> %s: %s (%s)",
            message.id,
            message.url,
            status,
            outcome.status_code or outcome.error,
        )
        return status
