"""Cutting a large job into chunks that different workers run at once."""

from __future__ import annotations

from collections.abc import Sequence

from .interfaces import JobInput, Span

__all__ = ["plan_chunks"]


def plan_chunks(inputs: Sequence[JobInput], size: int) -> list[list[Span]]:
    """Consecutive runs of at most ``size`` images, in input order; a ZIP's entries may be
    split over several chunks. Always at least one chunk (an empty job has one empty chunk)."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    chunks: list[list[Span]] = [[]]
    room = size
    for inp in inputs:
        first = 0
        while first < inp.images:
            if room == 0:
                chunks.append([])
                room = size
            end = min(inp.images, first + room)
            chunks[-1].append((inp.seq, first, end))
            room -= end - first
            first = end
    return chunks
