"""The API key store seam (embedded: ``service/sqlite/api_keys.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..clock import iso_time

__all__ = ["ApiKeyNotFound", "ApiKeyRecord", "ApiKeyStore"]


class ApiKeyNotFound(LookupError):
    """No such key in this tenant."""


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    tenant: str
    role: str
    name: str
    digest: str
    """HMAC-SHA256 of the whole key under the deployment's pepper, hex; never the key."""
    created_at: float
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_public(self) -> dict[str, object]:
        return {
            "id": self.key_id,
            "tenant": self.tenant,
            "role": self.role,
            "name": self.name,
            "created_at": iso_time(self.created_at),
            "expires_at": iso_time(self.expires_at) if self.expires_at is not None else None,
            "last_used_at": iso_time(self.last_used_at) if self.last_used_at is not None else None,
            "revoked_at": iso_time(self.revoked_at) if self.revoked_at is not None else None,
        }


class ApiKeyStore(Protocol):
    def create(self, record: ApiKeyRecord) -> None: ...
    def get(self, key_id: str) -> ApiKeyRecord | None: ...
    def list_keys(
        self, tenant: str, limit: int, after: str | None
    ) -> tuple[list[ApiKeyRecord], str | None]: ...
    def revoke(self, key_id: str, tenant: str, at: float) -> ApiKeyRecord:
        """Raises ``ApiKeyNotFound`` for a key of another tenant (or none)."""
        ...

    def touch(self, key_id: str, at: float) -> None:
        """Record a use (callers throttle this: at most about once a minute per key)."""
        ...

    def has_keys(self) -> bool:
        """Whether any key was ever created (the service is then never open)."""
        ...
