"""What the request path calls to record an act (off the event loop, never failing the request)."""

from __future__ import annotations

import logging

from ..clock import Clock
from ..offload import Offload
from .interfaces import AuditEntry, AuditLog

__all__ = ["AuditTrail"]

log = logging.getLogger("service.audit")


class AuditTrail:
    def __init__(self, store: AuditLog, clock: Clock, offload: Offload) -> None:
        self.store = store
        self.clock = clock
        self.offload = offload

    async def record(
        self,
        *,
        actor: str,
        tenant: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str,
        client: str,
    ) -> None:
        entry = AuditEntry(
            self.clock.now(), actor, tenant, action, target, outcome, request_id, client
        )
        try:
            await self.offload(self.store.append, entry)
        except Exception:  # the act already happened; losing its record is logged loudly
            log.exception("audit entry not written: %s", entry)
