"""The sender: threads that claim due messages, sign them, POST them and record each attempt."""

from __future__ import annotations

import email.utils
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from service.egress import EgressRefused, pinned_client
from service.webhooks.signing import webhook_headers
from service.webhooks.store import Claimed, Outcome, WebhookStore, destination_key

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


class Deliverer:
    """Owns the dispatch thread and a bounded pool of sender threads."""

    def __init__(self, store: WebhookStore) -> None:
        self.store = store
        self.settings = store.settings
        self.owner = "sender-" + secrets.token_hex(6)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._by_destination: dict[str, int] = {}  # sends in flight, per destination_key
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
                self.store.form_batches()
                with self._lock:
                    busy = dict(self._by_destination)
                free = self.settings.concurrency - sum(busy.values())
                if free > 0:
                    claimed = self.store.claim_due(
                        self.owner, free, self.lease_s, busy, self.settings.per_endpoint_concurrency
                    )
                    for message in claimed:
                        key = destination_key(message.endpoint_id, message.url)
                        with self._lock:
                            self._by_destination[key] = self._by_destination.get(key, 0) + 1
                        assert self._pool is not None
                        self._pool.submit(self._send_and_release, message, key)
                if time.monotonic() - last_housekeeping > self.settings.housekeeping_interval_s:
                    last_housekeeping = time.monotonic()
                    self.store.purge()
            except Exception:  # a locked or briefly unavailable database must not end the loop
                log.exception("webhook dispatch loop error")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def _send_and_release(self, message: Claimed, key: str) -> None:
        try:
            self.deliver(message)
        except Exception:
            log.exception("webhook delivery error for %s", message.id)
        finally:
            with self._lock:
                left = self._by_destination.get(key, 1) - 1
                if left > 0:
                    self._by_destination[key] = left
                else:
                    self._by_destination.pop(key, None)
            self._wake.set()

    def deliver(self, message: Claimed) -> str:
        """One attempt: sign with this attempt's timestamp, POST, record; returns the new status."""
        started_wall = self.store.clock()
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
                outcome = classify(response, latency_ms, self.store.clock())
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
        status = self.store.record_attempt(message, self.owner, outcome, started_wall)
        log.info(
            "webhook %s -> %s: %s (%s)",
            message.id,
            message.url,
            status,
            outcome.status_code or outcome.error,
        )
        return status
