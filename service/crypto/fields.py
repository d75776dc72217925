"""Values the database holds (webhook bodies, palettes) sealed under the database's data key.

The data key is random, kept wrapped under the current KEK in the backend's secrets
(``database_data_key``: ``kid:base64``), and re-wrapped by a rotation. A sealed value is
``b"\\x01" + nonce + AES-GCM(value)``; a value stored before encryption was turned on is text
and reads as it is.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..jobs.interfaces import SecretStore
from .keyring import KeyRing

__all__ = ["DATA_KEY_SECRET", "FieldCipher", "Plain", "database_data_key", "rewrap_database_key"]

DATA_KEY_SECRET = "database_data_key"
_VERSION = b"\x01"


class Plain:
    """No encryption: values are stored as they are."""

    def seal_text(self, text: str) -> str | bytes:
        return text

    def open_text(self, value: str | bytes) -> str:
        return value if isinstance(value, str) else value.decode()

    def seal_bytes(self, data: bytes) -> bytes:
        return data

    def open_bytes(self, value: bytes) -> bytes:
        return value


class FieldCipher(Plain):
    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)

    def seal_bytes(self, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, None)

    def open_bytes(self, value: bytes) -> bytes:
        if value[:1] != _VERSION:
            return value  # stored before encryption was turned on (JSON text)
        return self._aead.decrypt(value[1:13], value[13:], None)

    def seal_text(self, text: str) -> str | bytes:
        return self.seal_bytes(text.encode())

    def open_text(self, value: str | bytes) -> str:
        return value if isinstance(value, str) else self.open_bytes(value).decode()


def _encode(kid: str, wrapped: bytes) -> str:
    return f"{kid}:{base64.b64encode(wrapped).decode()}"


def database_data_key(ring: KeyRing, secrets: SecretStore) -> bytes:
    """The database's data key, made and wrapped the first time."""
    stored = secrets.get_or_create(
        DATA_KEY_SECRET, lambda: _encode(*ring.wrap(AESGCM.generate_key(bit_length=256)))
    )
    kid, _, wrapped = stored.partition(":")
    return ring.unwrap(kid, base64.b64decode(wrapped))


def rewrap_database_key(ring: KeyRing, secrets: SecretStore) -> bool:
    """Wrap the database's data key under the current KEK; False when it already was."""
    stored = secrets.get_or_create(
        DATA_KEY_SECRET, lambda: _encode(*ring.wrap(AESGCM.generate_key(bit_length=256)))
    )
    kid, _, wrapped = stored.partition(":")
    if kid == ring.current:
        return False
    secrets.set(DATA_KEY_SECRET, _encode(*ring.wrap(ring.unwrap(kid, base64.b64decode(wrapped)))))
    return True
