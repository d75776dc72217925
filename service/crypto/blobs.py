"""A ``BlobStore`` whose objects are encrypted (``stream.py``) in another ``BlobStore``.

Sizes, digests, ranges and reads are of the plaintext, so ETags, ``Content-Length`` and byte
ranges are the same with encryption on or off. The plaintext never reaches the disk:
``as_file`` hands out a decrypting file object instead of a path.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, cast

from ..jobs.interfaces import BlobInfo, BlobStore, BlobWriter
from .keyring import KeyRing
from .stream import HEADER_SIZE, DecryptingReader, EncryptingWriter, plain_size, rewrap

__all__ = ["EncryptedBlobStore", "RewrapCount"]


@dataclass(frozen=True)
class RewrapCount:
    rewrapped: int
    current: int


class _Writer:
    def __init__(self, ring: KeyRing, inner: BlobWriter, key: str) -> None:
        self._inner = inner
        self._key = key
        self._cipher = EncryptingWriter(ring, inner)
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)
        self._cipher.write(chunk)

    def commit(self) -> BlobInfo:
        self._cipher.close()
        self._inner.commit()
        return BlobInfo(self._key, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        self._inner.abort()


class EncryptedBlobStore:
    def __init__(self, inner: BlobStore, ring: KeyRing) -> None:
        self.inner = inner
        self.ring = ring

    def create(self, key: str) -> BlobWriter:
        return _Writer(self.ring, self.inner.create(key), key)

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        writer = self.create(key)
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def open(self, key: str) -> BinaryIO:
        raw = self.inner.open(key)
        try:
            reader = DecryptingReader(self.ring, raw)
        except BaseException:
            raw.close()
            raise
        return cast(BinaryIO, io.BufferedReader(reader, buffer_size=64 * 1024))

    def as_file(self, key: str) -> AbstractContextManager[str | BinaryIO]:
        return self.open(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def keys(self, prefix: str) -> Iterator[str]:
        return self.inner.keys(prefix)

    def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 65536
    ) -> Iterator[bytes]:
        with self.open(key) as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        with self.inner.open(key) as raw:
            header = raw.read(HEADER_SIZE)
        chunk = int.from_bytes(header[108:112], "big")
        return plain_size(self.inner.size(key), chunk)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)

    def presigned_get(
        self, key: str, expires_in: int, *, content_type: str, content_disposition: str
    ) -> str | None:
        return None  # the store holds ciphertext: only the service can serve the content

    def expire(self, max_age_seconds: float) -> int:
        return self.inner.expire(max_age_seconds)

    def rewrap(self, prefixes: Iterable[str]) -> RewrapCount:
        """Every object under ``prefixes`` re-wrapped under the current KEK (a copy each)."""
        rewrapped = current = 0
        for prefix in prefixes:
            for key in list(self.inner.keys(prefix)):
                with self.inner.open(key) as raw:
                    chunks = rewrap(self.ring, raw)
                    if chunks is None:
                        current += 1
                        continue
                    self.inner.put(key, chunks)
                rewrapped += 1
        return RewrapCount(rewrapped, current)
