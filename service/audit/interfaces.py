"""The audit store seam (embedded: ``service/sqlite/audit.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..clock import iso_time

__all__ = ["AuditEntry", "AuditLog", "AuditQuery", "StoredEntry"]


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    tenant: str
    action: str
    target: str
    outcome: str
    """``allowed`` with the answer's status (``allowed 201``), or ``denied 403`` ..."""
    request_id: str
    client: str


@dataclass(frozen=True)
class StoredEntry:
    seq: int
    entry: AuditEntry
    prev: str
    mac: str

    def to_public(self) -> dict[str, Any]:
        body = asdict(self.entry)
        body["at"] = iso_time(self.entry.at)
        return {"seq": self.seq, **body}


@dataclass(frozen=True)
class AuditQuery:
    tenant: str
    action: str | None = None
    actor: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    before: int | None = None
    """Entries with a smaller ``seq`` (the page cursor; newest first)."""


class AuditLog(Protocol):
    def append(self, entry: AuditEntry) -> StoredEntry:
        """Add an entry at the end of the chain, atomically with its MAC."""
        ...

    def query(self, q: AuditQuery) -> list[StoredEntry]: ...

    def all_entries(self) -> Iterator[StoredEntry]:
        """Every stored row in ``seq`` order, as stored (for verification)."""
        ...
