"""The keyed hash chain: each entry's MAC covers its own fields, its position and the MAC of
the entry before it, under a key the log does not hold (``PALETTE_AUDIT_KEY``, or one kept in
the backend's secrets). Changing, deleting or swapping a row breaks the chain at that row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import asdict

from .interfaces import AuditEntry, StoredEntry

__all__ = ["GENESIS", "mac", "verify"]

GENESIS = "0" * 64


def mac(key: bytes, seq: int, entry: AuditEntry, prev: str) -> str:
    fields = json.dumps({"seq": seq, **asdict(entry)}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, f"{prev}\n{fields}".encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, entries: Iterable[StoredEntry]) -> list[str]:
    """Every break in the chain, one sentence each, naming the entry; empty when intact."""
    problems: list[str] = []
    rows = list(entries)
    broken = [
        row
        for row in rows
        if not hmac.compare_digest(mac(key, row.seq, row.entry, row.prev), row.mac)
    ]
    # A row signed at another position fails where it is now; the positions it may come from
    # are those of the other broken rows (a swap breaks both).
    candidates = {row.seq for row in broken} if len(broken) <= 1000 else set()
    moved_from: dict[int, int] = {}
    for row in broken:
        for seq in candidates - {row.seq}:
            if hmac.compare_digest(mac(key, seq, row.entry, row.prev), row.mac):
                moved_from[row.seq] = seq
                break
    broken_at = {row.seq for row in broken}
    # Where each entry that verifies was written: its MAC by its original position.
    mac_at = {
        moved_from.get(row.seq, row.seq): row.mac
        for row in rows
        if row.seq not in broken_at or row.seq in moved_from
    }
    expected_seq = 1
    for row in rows:
        if row.seq > expected_seq:
            missing = (
                f"entry {expected_seq}"
                if row.seq == expected_seq + 1
                else f"entries {expected_seq}-{row.seq - 1}"
            )
            problems.append(f"{missing} removed (the log jumps to entry {row.seq})")
        elif row.seq in moved_from:
            problems.append(
                f"entry {moved_from[row.seq]} was moved to position {row.seq} (reordered)"
            )
        elif row.seq in broken_at:
            problems.append(f"entry {row.seq} was changed (its MAC does not match)")
        else:
            before = GENESIS if row.seq == 1 else mac_at.get(row.seq - 1)
            # (None: the entry before it was removed or changed, and is reported as such.)
            if before is not None and row.prev != before:
                problems.append(f"entry {row.seq} does not follow the entry before it")
        expected_seq = row.seq + 1
    return problems
