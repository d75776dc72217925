"""Webhooks: Standard Webhooks delivery of job events with retries, dead letters and batching.

``WebhookSystem`` runs in every process of the service (``palette serve`` and
``palette worker``): one thread relays the job event log into the outbox (once per event id,
however many processes relay it) and hands due messages to a bounded pool of senders.
"""

from __future__ import annotations

import logging

from ..clock import Clock
from ..jobs.interfaces import EventLog
from .delivery import Deliverer, RetryPolicy
from .interfaces import WebhookEndpoints, WebhookOutbox
from .settings import WebhookSettings

__all__ = ["WebhookSettings", "WebhookSystem"]

log = logging.getLogger("palette.webhooks")


class WebhookSystem:
    """The endpoints, the outbox and the thread that relays events and sends messages."""

    def __init__(
        self,
        settings: WebhookSettings,
        endpoints: WebhookEndpoints,
        outbox: WebhookOutbox,
        events: EventLog,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.outbox = outbox
        self.clock = clock
        self.deliverer = Deliverer(settings, outbox, events, clock, RetryPolicy(settings))

    def start(self) -> None:
        self.deliverer.start()

    def stop(self) -> None:
        self.deliverer.stop()

    def wake(self) -> None:
        self.deliverer.wake()

    def alive(self) -> bool:
        return self.deliverer.alive()
