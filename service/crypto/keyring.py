"""Key-encryption keys: the first one wraps new data keys, every one unwraps."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KeyRing", "UnknownKey"]


class UnknownKey(Exception):
    """A data key wrapped under a KEK that is not in PALETTE_ENCRYPTION_KEYS (any more)."""


class KeyRing:
    def __init__(self, keys: tuple[tuple[str, bytes], ...]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        self.current = keys[0][0]

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """``(kid, nonce + AES-GCM(data_key))`` under the current KEK."""
        nonce = os.urandom(12)
        return self.current, nonce + self._keys[self.current].encrypt(nonce, data_key, b"dek")

    def unwrap(self, kid: str, wrapped: bytes) -> bytes:
        aead = self._keys.get(kid)
        if aead is None:
            raise UnknownKey(f"data key wrapped under {kid!r}, which is not configured")
        return aead.decrypt(wrapped[:12], wrapped[12:], b"dek")
