"""What a job event becomes on the wire: event types, subscriptions and the thin body."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ..clock import iso_time

__all__ = [
    "CALLBACK_EVENTS",
    "JOB_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "WILDCARD_EVENTS",
    "canonical_json",
    "destination_key",
    "job_payload",
    "message_id",
    "subscribed",
]

JOB_EVENTS = ("job.succeeded", "job.failed", "job.canceled", "job.progress")
# "*" subscribes to every event except the chatty job.progress, which is opt-in by name.
WILDCARD_EVENTS = ("job.succeeded", "job.failed", "job.canceled")
CALLBACK_EVENTS = WILDCARD_EVENTS
MAX_PAYLOAD_BYTES = 20_000


def canonical_json(value: Any) -> str:
    """JSON as the stores keep it: compact, keys sorted, so equal values give equal text."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def job_payload(
    job: dict[str, Any], event_type: str, now: float, base_url: str = ""
) -> dict[str, Any]:
    """The thin event body: no image data, only the job's id, state and where to fetch more."""
    job_id = str(job.get("id") or job.get("job_id") or "")
    data: dict[str, Any] = {"job_id": job_id, "status": job.get("status")}
    progress = job.get("progress")
    if isinstance(progress, dict):
        data["progress"] = {
            k: v
            for k, v in progress.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    error = job.get("error")
    if isinstance(error, dict) and error.get("code"):
        data["error"] = {"code": str(error["code"])[:100]}
    data["links"] = {
        "self": f"{base_url}/v1/jobs/{job_id}",
        "results": f"{base_url}/v1/jobs/{job_id}/results",
    }
    return {"type": event_type, "timestamp": iso_time(now), "data": data}


def subscribed(event_types: Sequence[str], event_type: str) -> bool:
    if event_type in event_types:
        return True
    return "*" in event_types and event_type in WILDCARD_EVENTS


def message_id(event_id: str, destination: str) -> str:
    """The ``webhook-id`` of what one event sends to one destination: the same every time the
    event is relayed, so a repeat is the same message (and receivers dedupe on it)."""
    digest = hashlib.sha256(f"{event_id}|{destination}".encode()).digest()
    return "msg_" + base64.urlsafe_b64encode(digest[:18]).decode("ascii")


def destination_key(endpoint_id: str | None, url: str) -> str:
    """What per-destination limits count by: the endpoint, or a callback's URL."""
    return endpoint_id if endpoint_id is not None else "callback:" + url
