"""Webhook settings, read from ``PALETTE_WEBHOOK_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..egress import EgressPolicy

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"5,300,1800"`` -> seconds to wait before each retry (the first attempt is immediate)."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(
            f"PALETTE_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, got {text!r}"
        ) from exc
    if not delays or any(d < 0 for d in delays):
        raise ValueError(
            f"PALETTE_WEBHOOK_RETRY_SCHEDULE needs at least one non-negative delay, got {text!r}"
        )
    return delays


@dataclass(frozen=True)
class WebhookSettings:
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    jitter: float = 0.2  # each delay is multiplied by a random factor in [1 - j, 1 + j]
    timeout_s: float = 15.0
    disable_after_s: float = 5 * 24 * 3600.0  # an endpoint failing this long is disabled
    rotation_overlap_s: float = 24 * 3600.0  # the old secret keeps signing this long
    retry_after_cap_s: float = 24 * 3600.0
    poll_interval_s: float = 0.25
    concurrency: int = 4
    per_endpoint_concurrency: int = 2  # sends in flight to one endpoint (or callback URL)
    tenant_concurrency: int = 0  # sends in flight for one tenant; 0: half the senders
    retention_s: float = 30 * 24 * 3600.0  # finished messages (and their attempts) are kept
    housekeeping_interval_s: float = 60.0  # purge old messages and expired rotated secrets
    callback_secret: str = field(default="", repr=False)  # signs callbacks; generated if empty
    egress: EgressPolicy = field(default_factory=EgressPolicy)

    @property
    def per_tenant(self) -> int:
        """Sends in flight for one tenant: one tenant's slow receivers leave the other half
        of the senders to everyone else."""
        return self.tenant_concurrency or max(1, self.concurrency // 2)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError as exc:
                raise ValueError(f"{name} must be a number, got {raw!r}") from exc
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {raw!r}")
            return value

        schedule_text = env.get("PALETTE_WEBHOOK_RETRY_SCHEDULE", "").strip()
        return cls(
            retry_schedule=parse_schedule(schedule_text)
            if schedule_text
            else DEFAULT_RETRY_SCHEDULE,
            jitter=min(number("PALETTE_WEBHOOK_JITTER", cls.jitter), 1.0),
            timeout_s=number("PALETTE_WEBHOOK_TIMEOUT", cls.timeout_s),
            disable_after_s=number("PALETTE_WEBHOOK_DISABLE_AFTER", cls.disable_after_s),
            rotation_overlap_s=number("PALETTE_WEBHOOK_ROTATION_OVERLAP", cls.rotation_overlap_s),
            retry_after_cap_s=number("PALETTE_WEBHOOK_RETRY_AFTER_CAP", cls.retry_after_cap_s),
            poll_interval_s=number("PALETTE_WEBHOOK_POLL_INTERVAL", cls.poll_interval_s),
            concurrency=max(1, int(number("PALETTE_WEBHOOK_CONCURRENCY", cls.concurrency))),
            per_endpoint_concurrency=max(
                1,
                int(number("PALETTE_WEBHOOK_ENDPOINT_CONCURRENCY", cls.per_endpoint_concurrency)),
            ),
            tenant_concurrency=int(
                number("PALETTE_WEBHOOK_TENANT_CONCURRENCY", cls.tenant_concurrency)
            ),
            retention_s=number("PALETTE_WEBHOOK_RETENTION", cls.retention_s),
            housekeeping_interval_s=number(
                "PALETTE_WEBHOOK_HOUSEKEEPING_INTERVAL", cls.housekeeping_interval_s
            ),
            callback_secret=env.get("PALETTE_WEBHOOK_CALLBACK_SECRET", "").strip(),
            egress=EgressPolicy.from_env(env),
        )

    def public(self) -> dict[str, object]:
        """The settings in force, without secrets (for the start-up log)."""
        return {
            "webhook_retry_schedule": list(self.retry_schedule),
            "webhook_jitter": self.jitter,
            "webhook_timeout_s": self.timeout_s,
            "webhook_disable_after_s": self.disable_after_s,
            "webhook_concurrency": self.concurrency,
            "webhook_endpoint_concurrency": self.per_endpoint_concurrency,
            "webhook_tenant_concurrency": self.per_tenant,
            "webhook_retention_s": self.retention_s,
            "webhook_poll_interval_s": self.poll_interval_s,
            "webhook_rotation_overlap_s": self.rotation_overlap_s,
            "webhook_callback_secret": "configured" if self.callback_secret else "generated",
            "egress_allow_cidrs": [str(n) for n in self.egress.allow_cidrs],
        }
