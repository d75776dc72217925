"""Paging cursors of the job list, the same on every backend.

A cursor is an opaque URL-safe token for the job number after which the next page starts.
Decoding accepts exactly what ``encode_cursor`` makes (a forged or altered token is
``InvalidCursor``, which the API answers with a 400 problem), and only numbers both stores can
hold (SQLite's INTEGER is 64-bit).
"""

from __future__ import annotations

import base64
import re

from .interfaces import InvalidCursor

MAX_JOB_NUMBER = 2**63 - 1


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:  # not base64, or not ASCII
        raise InvalidCursor("malformed cursor") from None
    number = re.fullmatch(rb"s([0-9]{1,19})", raw)
    seq = int(number[1]) if number else -1
    # out of range, or not the token encode_cursor makes (stray characters, padding, zeros)
    if not 0 <= seq <= MAX_JOB_NUMBER or encode_cursor(seq) != cursor:
        raise InvalidCursor("malformed cursor")
    return seq
