"""The search cursor both backends issue: the last hit's squared distance and a tie-breaker."""

from __future__ import annotations

import base64
import binascii

from ..jobs.interfaces import InvalidCursor

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(distance_squared: float, tie: str) -> str:
    # float.hex round-trips exactly, so the next page starts right after this hit.
    text = f"{distance_squared.hex()} {tie}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        number, tie = text.split(" ", 1)
        value = float.fromhex(number)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor(cursor) from None
    if not tie or value != value or value < 0:
        raise InvalidCursor(cursor)
    return value, tie
