"""Minting and revoking API keys (shared by ``POST /v1/api-keys`` and ``palette keys create``)."""

from __future__ import annotations

from ..clock import Clock
from . import api_keys
from .interfaces import ApiKeyRecord, ApiKeyStore

__all__ = ["PEPPER_SECRET", "KeyService"]

PEPPER_SECRET = "api_key_pepper"
"""The name of the HMAC key for stored API keys in the backend's secrets."""


class KeyService:
    def __init__(self, store: ApiKeyStore, pepper: bytes, clock: Clock) -> None:
        self.store = store
        self.pepper = pepper
        self.clock = clock

    def create(
        self, tenant: str, role: str, name: str = "", expires_in: float | None = None
    ) -> tuple[ApiKeyRecord, str]:
        """A new key: its record, and the key itself (shown once, never stored)."""
        key_id, key = api_keys.mint()
        now = self.clock.now()
        record = ApiKeyRecord(
            key_id,
            tenant,
            role,
            name,
            api_keys.digest(self.pepper, key),
            now,
            None if expires_in is None else now + expires_in,
        )
        self.store.create(record)
        return record, key

    def revoke(self, key_id: str, tenant: str) -> ApiKeyRecord:
        return self.store.revoke(key_id, tenant, self.clock.now())
