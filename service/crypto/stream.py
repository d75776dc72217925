"""The encrypted object format: a fixed header, then AES-256-GCM chunks.

```
header (128 bytes): b"PALENC1\\0" | kid (32, NUL-padded) | wrapped data key (60) |
                    nonce prefix (8) | chunk size (4, big-endian) | zeros
chunk i:            AES-GCM(data key, nonce = prefix | i (4 bytes), plaintext,
                            aad = header[:112] | b"\\x01" if last else b"\\x00") (+16-byte tag)
```
Every chunk but the last holds exactly ``chunk size`` plaintext bytes, so byte ``n`` lies in
chunk ``n // chunk size`` and a range is read by decrypting only its chunks. The last chunk is
marked in its associated data: a truncated object fails to decrypt instead of reading short.
The header's fixed size lets a rotation re-wrap the data key without touching the chunks.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keyring import KeyRing

__all__ = ["CHUNK", "HEADER_SIZE", "DecryptingReader", "EncryptingWriter", "plain_size", "rewrap"]

MAGIC = b"PALENC1\0"
HEADER_SIZE = 128
CHUNK = 64 * 1024
TAG = 16
# Each chunk's associated data covers the header's nonce prefix and chunk size (bytes
# 100-112), not the wrapped key, which a rotation replaces.
_SIGNED = 112
_LAYOUT = struct.Struct(">8s32s60s8sI")


def _header(kid: str, wrapped: bytes, prefix: bytes, chunk: int) -> bytes:
    packed = _LAYOUT.pack(MAGIC, kid.encode(), wrapped, prefix, chunk)
    return packed + bytes(HEADER_SIZE - len(packed))


def _parse(header: bytes) -> tuple[str, bytes, bytes, int]:
    if len(header) != HEADER_SIZE or header[:8] != MAGIC:
        raise ValueError("not an encrypted object (no PALENC1 header)")
    _, kid, wrapped, prefix, chunk = _LAYOUT.unpack_from(header)
    return kid.rstrip(b"\0").decode(), wrapped, prefix, chunk


def _aad(header: bytes, last: bool) -> bytes:
    return header[8 + 32 + 60 : _SIGNED] + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """Encrypts what is written, chunk by chunk, into ``sink`` (anything with ``write``)."""

    def __init__(self, ring: KeyRing, sink: object, chunk: int = CHUNK) -> None:
        self._sink = sink
        data_key = AESGCM.generate_key(bit_length=256)
        kid, wrapped = ring.wrap(data_key)
        self._aead = AESGCM(data_key)
        self._prefix = os.urandom(8)
        self._chunk = chunk
        self._header = _header(kid, wrapped, self._prefix, chunk)
        self._pending = bytearray()
        self._index = 0
        self._emit(self._header)

    def _emit(self, data: bytes) -> None:
        self._sink.write(data)  # type: ignore[attr-defined]

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = self._prefix + struct.pack(">I", self._index)
        self._emit(self._aead.encrypt(nonce, plain, _aad(self._header, last)))
        self._index += 1

    def write(self, data: bytes) -> None:
        self._pending += data
        # Keep at least one byte back: the last chunk is only known at close.
        while len(self._pending) > self._chunk:
            self._seal(bytes(self._pending[: self._chunk]), last=False)
            del self._pending[: self._chunk]

    def close(self) -> None:
        self._seal(bytes(self._pending), last=True)
        self._pending.clear()


def plain_size(stored_size: int, chunk: int) -> int:
    body = stored_size - HEADER_SIZE
    chunks = max(1, -(-body // (chunk + TAG)))
    return body - chunks * TAG


class DecryptingReader(io.RawIOBase):
    """A seekable, readable view of the plaintext of an encrypted object in ``raw``."""

    def __init__(self, ring: KeyRing, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        header = raw.read(HEADER_SIZE)
        kid, wrapped, self._prefix, self._chunk = _parse(header)
        self._header = header
        self._aead = AESGCM(ring.unwrap(kid, wrapped))
        stored = raw.seek(0, os.SEEK_END)
        self._size = plain_size(stored, self._chunk)
        self._chunks = max(1, -(-(stored - HEADER_SIZE) // (self._chunk + TAG)))
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _plain_chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._raw.seek(HEADER_SIZE + index * (self._chunk + TAG))
        sealed = self._raw.read(self._chunk + TAG)
        nonce = self._prefix + struct.pack(">I", index)
        plain = self._aead.decrypt(nonce, sealed, _aad(self._header, index == self._chunks - 1))
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        filled = 0
        while filled < len(buffer) and self._pos < self._size:
            index, offset = divmod(self._pos, self._chunk)
            plain = self._plain_chunk(index)[offset : offset + len(buffer) - filled]
            buffer[filled : filled + len(plain)] = plain
            filled += len(plain)
            self._pos += len(plain)
        return filled

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def rewrap(ring: KeyRing, raw: BinaryIO) -> Iterator[bytes] | None:
    """The object's bytes with its data key wrapped under the current KEK, or None when it
    already is. The chunks are copied as they are (their associated data does not cover the
    wrapped key)."""
    header = raw.read(HEADER_SIZE)
    kid, wrapped, prefix, chunk = _parse(header)
    if kid == ring.current:
        return None
    new_kid, new_wrapped = ring.wrap(ring.unwrap(kid, wrapped))

    def chunks() -> Iterator[bytes]:
        yield _header(new_kid, new_wrapped, prefix, chunk)
        while block := raw.read(1 << 20):
            yield block

    return chunks()
