"""Helpers for the webhook tests (importable: importlib mode has no sibling conftest imports)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.jobs.interfaces import JobEvent
from service.webhooks import WebhookSystem

__all__ = ["FnClock", "relay"]


class FnClock:
    """A clock read from a function (tests move time by changing what it returns)."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self.fn = fn

    def now(self) -> float:
        return self.fn()


_events = 0


def relay(system: WebhookSystem, job: dict[str, Any], event_type: str) -> int:
    """What the sender does with each new entry of the job event log."""
    global _events
    _events += 1
    event = JobEvent(f"evt_test_{_events}_{time.monotonic_ns()}", event_type, job, system.clock.now())
    written = system.outbox.relay(event)
    system.wake()
    return written


def webhook_app(system: WebhookSystem) -> Any:
    """The webhook routes alone, as an ASGI app whose requests see ``system`` in their state
    (what the service's lifespan gives them)."""
    from starlette.applications import Starlette

    from service.offload import Offload
    from service.problems import EXCEPTION_HANDLERS
    from service.webhooks.api import routes

    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    state = {"webhooks": system, "offload": Offload(8)}

    async def with_state(scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = state
        await app(scope, receive, send)

    return with_state
