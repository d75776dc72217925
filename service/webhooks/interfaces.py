"""The seams of the webhooks part: endpoints and the outbox. A second backend implements these.

Both take plain values (owners, ids, field dicts, preconditions) and return JSON-ready dicts;
nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..jobs.interfaces import JobEvent

__all__ = [
    "Claimed",
    "Conflict",
    "NotFound",
    "Outcome",
    "PreconditionFailed",
    "Precondition",
    "WebhookEndpoints",
    "WebhookOutbox",
]

Precondition = Callable[[str], bool]
"""Given the current ETag, may the change go ahead (the route's reading of ``If-Match``)?"""


class NotFound(Exception):
    pass


class PreconditionFailed(Exception):
    def __init__(self, current_etag: str) -> None:
        super().__init__("the precondition does not hold for the current ETag")
        self.current_etag = current_etag


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class Claimed:
    """A message leased to this sender for one attempt."""

    id: str
    endpoint_id: str | None
    url: str
    body: str
    tries: int
    secrets: tuple[str, ...]
    trigger: str = "scheduled"  # or "resend" / "recover": the first try after a manual requeue
    tenant: str = ""


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced."""

    status_code: int | None
    latency_ms: float
    error: str | None
    success: bool
    gone: bool = False  # 410: stop and disable the endpoint
    retry_after_s: float | None = None


class WebhookEndpoints(Protocol):
    """Subscriptions of a tenant (``owner``): URL, event types, batching, signing secrets."""

    def create_endpoint(self, owner: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The endpoint and its secret (shown once)."""
        ...

    def get_endpoint(self, endpoint_id: str, owner: str) -> dict[str, Any]: ...
    def list_endpoints(
        self, owner: str, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    def update_endpoint(
        self,
        endpoint_id: str,
        owner: str,
        changes: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]: ...
    def delete_endpoint(
        self, endpoint_id: str, owner: str, precondition: Precondition | None = None
    ) -> None: ...
    def rotate_secret(self, endpoint_id: str, owner: str) -> tuple[dict[str, Any], str]: ...


class WebhookOutbox(Protocol):
    """Messages to deliver, with their attempts: enqueue, claim due, record, dead letters,
    replay."""

    def relay(self, event: JobEvent) -> int:
        """Write the messages a job event causes, once per event id however often it is
        relayed; returns how many were written."""
        ...

    def enqueue_test(self, endpoint_id: str, owner: str, event_type: str) -> str: ...
    def form_batches(self) -> int: ...
    def claim_due(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        busy: Mapping[str, int] | None = None,
        per_destination: int | None = None,
        busy_tenants: Mapping[str, int] | None = None,
        per_tenant: int | None = None,
    ) -> list[Claimed]:
        """Lease due messages: at most ``per_destination`` in flight per endpoint and
        ``per_tenant`` per tenant, counting what this sender already has (``busy``,
        ``busy_tenants``), so no receiver and no tenant holds every sender."""
        ...

    def record_attempt(
        self,
        message: Claimed,
        lease_owner: str,
        outcome: Outcome,
        attempted_at: float,
        retry_in: float | None = None,
    ) -> str:
        """Store the attempt; the message is due again in ``retry_in`` seconds, or a dead
        letter when that is None. Returns its new status."""
        ...
    def resend(
        self, message_id: str, owner: str, endpoint_id: str | None = None
    ) -> dict[str, Any]: ...
    def recover(self, endpoint_id: str, owner: str, since: float, until: float | None) -> int: ...
    def list_messages(
        self,
        owner: str,
        *,
        endpoint_id: str | None,
        callbacks_only: bool = False,
        status: str | None = None,
        job_id: str | None = None,
        limit: int = 50,
        cursor: tuple[float, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[float, str] | None]: ...
    def get_message(
        self, message_id: str, owner: str, endpoint_id: str | None = None
    ) -> dict[str, Any]: ...
    def purge(self) -> int: ...
