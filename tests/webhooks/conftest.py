"""Fixtures for the webhook tests: a verifying receiver (the network guard is in tests/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from service.backends import Backends, open_backends
from webhooktools import FnClock
from service.clock import SystemClock
from service.settings import Settings
from service.webhooks import WebhookSystem
from service.webhooks.settings import WebhookSettings

# -- the webhooks part on the real embedded backend -------------------------------------------


@pytest.fixture
def open_webhooks_at() -> Iterator[Callable[..., WebhookSystem]]:
    """``open_webhooks_at(data_dir, settings, clock=None)``: a WebhookSystem over the backends
    that ``open_backends`` gives for ``data_dir`` (stopped and closed afterwards)."""
    opened: list[tuple[WebhookSystem, Backends]] = []

    def open_system(
        data_dir: Any, settings: WebhookSettings, clock: Callable[[], float] | None = None
    ) -> WebhookSystem:
        the_clock = SystemClock() if clock is None else FnClock(clock)
        backends = open_backends(Settings(data_dir=data_dir, webhooks=settings), the_clock)
        system = WebhookSystem(
            settings, backends.webhook_endpoints, backends.webhook_outbox, backends.events,
            the_clock,
        )
        opened.append((system, backends))
        return system

    yield open_system
    for system, backends in opened:
        if system.alive():
            system.stop()
        backends.close()


@pytest.fixture
def open_webhooks(tmp_path: Any, open_webhooks_at: Any) -> Callable[..., WebhookSystem]:
    """``open_webhooks(settings, clock=None)``: the same, with its data dir in ``tmp_path``."""

    def open_system(
        settings: WebhookSettings, clock: Callable[[], float] | None = None
    ) -> WebhookSystem:
        system: WebhookSystem = open_webhooks_at(tmp_path, settings, clock)
        return system

    return open_system


# -- the receiver --------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    at: float
    verified: bool
    error: str | None

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str]]
SENTINEL_QUERY = "?sentinel"


class Receiver:
    """A loopback HTTP server that verifies every request with the ``standardwebhooks`` package.

    ``reply(n, received)`` decides the answer to the n-th request (0-based): a status and headers;
    it may also sleep to play a receiver that never answers.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.secrets: list[str] = []
        self.reply: Callable[[int, Received], Reply] = lambda n, r: (200, {})
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if self.path.endswith(SENTINEL_QUERY):
                    # The absence checks' marker (see ``settled``): answered at once, not
                    # counted with the requests the test looks at.
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = receiver._record(headers, body, self.path)
                with receiver._lock:
                    index = len(receiver.received) - 1
                status, extra = receiver.reply(index, received)
                try:
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def _record(self, headers: dict[str, str], body: bytes, path: str) -> Received:
        verified, error = False, "no secret configured"
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified, error = True, None
                break
            except WebhookVerificationError as exc:
                error = str(exc)
        received = Received(headers, body, path, time.time(), verified, error)
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()
        return received

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Wait until ``count`` requests arrived (or fail the test after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver got {len(self.received)} requests, expected {count}"
                    )
                self._cond.wait(left)
            return list(self.received)

    def arrivals(self) -> list[Received]:
        """Every request so far, whatever it was answered (a snapshot taken under the lock)."""
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.close()


SENTINEL_OWNER = "sentinel-tenant"


@pytest.fixture
def settled(receiver: Receiver) -> Callable[..., list[Received]]:
    """An absence check with a bound instead of a sleep.

    ``settled(system)`` queues one message to a sentinel endpoint of another tenant (so no job
    event reaches it) and waits, at most ``timeout`` seconds, until the sender has delivered it
    and recorded the answer. Anything that was due before it (a retry that should not happen, a
    message that should not exist) has been claimed by then, since due messages are claimed
    oldest first. Returns what the receiver got (the receiver does not count the sentinel).
    """

    def settle(system: Any, timeout: float = 5.0) -> list[Received]:
        endpoint, _ = system.endpoints.create_endpoint(
            SENTINEL_OWNER,
            {"url": receiver.url + SENTINEL_QUERY, "event_types": ["job.canceled"]},
        )
        message_id = system.outbox.enqueue_test(endpoint["id"], SENTINEL_OWNER, "job.canceled")
        system.wake()
        deadline = time.monotonic() + timeout
        while system.outbox.get_message(message_id, SENTINEL_OWNER)["status"] != "succeeded":
            if time.monotonic() > deadline:
                raise AssertionError("the sender did not deliver the sentinel message in time")
            time.sleep(0.01)
        return receiver.arrivals()

    return settle
