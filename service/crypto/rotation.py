"""``palette keys rotate``: every data key wrapped under the first KEK, without downtime.

Objects wrapped under an older KEK stay readable throughout (every configured KEK unwraps),
so a rotation is: prepend the new KEK to ``PALETTE_ENCRYPTION_KEYS`` on every node, run this,
then drop the old KEK once it reports nothing left under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs.interfaces import BlobStore, SecretStore
from ..security.settings import SecuritySettings
from .blobs import EncryptedBlobStore
from .fields import FieldCipher, Plain, database_data_key, rewrap_database_key
from .keyring import KeyRing

__all__ = ["Rotation", "RotationReport", "at_rest"]

BLOB_PREFIXES = ("uploads", "results")


@dataclass(frozen=True)
class RotationReport:
    kid: str
    rewrapped: int
    current: int


@dataclass(frozen=True)
class Rotation:
    blobs: EncryptedBlobStore
    secrets: SecretStore

    def run(self) -> RotationReport:
        ring = self.blobs.ring
        count = self.blobs.rewrap(BLOB_PREFIXES)
        database = rewrap_database_key(ring, self.secrets)
        return RotationReport(
            ring.current, count.rewrapped + database, count.current + (not database)
        )


def at_rest(
    settings: SecuritySettings, blobs: BlobStore, secrets: SecretStore
) -> tuple[BlobStore, Plain, Rotation | None]:
    """What a backend stores through: with ``PALETTE_ENCRYPTION_KEYS`` set, ``blobs`` wrapped
    so each object has its own data key, a cipher for database values under the database's
    data key, and the rotation of both; else ``blobs`` itself and plain values."""
    ring = settings.encryption_ring
    if not ring:
        return blobs, Plain(), None
    keys = KeyRing(ring)
    encrypted = EncryptedBlobStore(blobs, keys)
    cipher = FieldCipher(database_data_key(keys, secrets))
    return encrypted, cipher, Rotation(encrypted, secrets)
