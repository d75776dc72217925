"""API keys as a product: ``pal_live_<id>_<secret><checksum>``, stored only as an HMAC.

The id (12 hex digits) finds the record; the secret (32 base62 characters, 190 bits) proves
the holder; the checksum (CRC32 of the rest, 6 base62 characters) lets a typo or a random
string be refused without a store lookup, and lets secret scanners recognise a real key.
The store keeps HMAC-SHA256(pepper, key): a copy of the database gives no usable key, and the
pepper lives in the backend's secrets (every node shares it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

__all__ = ["KEY_PREFIX", "digest", "mint", "parse"]

KEY_PREFIX = "pal_live_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHAPE = re.compile(r"^pal_live_([0-9a-f]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$")


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def mint() -> tuple[str, str]:
    """A new key: ``(key_id, key)``."""
    key_id = secrets.token_hex(6)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    body = f"{KEY_PREFIX}{key_id}_{secret}"
    return key_id, body + _checksum(body)


def parse(key: str) -> str | None:
    """The key id of a well-formed key with a correct checksum, else None."""
    match = _SHAPE.match(key)
    if match is None:
        return None
    body = key[:-6]
    if not hmac.compare_digest(_checksum(body), match.group(3)):
        return None
    return match.group(1)


def digest(pepper: bytes, key: str) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
