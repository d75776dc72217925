"""The bytes of sync bodies held in memory, all requests together: every request gives back all
it took, however many pieces its body came in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def pieces(data: bytes, count: int) -> Iterator[bytes]:
    size = -(-len(data) // count)
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_body_sent_in_pieces_gives_back_every_byte(tmp_path: Path, h: Any) -> None:
    image = h.make_jpeg(31, size=(320, 240), quality=95)
    base = Settings(data_dir=tmp_path / "data", sweep_interval_seconds=3600)
    # Room for three such bodies at once; the requests below come one after another, so each
    # finds the whole budget free again.
    security = dataclasses.replace(base.security, max_sync_bytes_in_flight=3 * len(image))
    settings = dataclasses.replace(base, security=security)
    with TestClient(create_app(settings)) as c:
        for n in range(12):
            body = image + b"request %d" % n  # new bytes each time: computed, not cached
            r = c.post("/v1/palette?colors=4", content=pieces(body, 5))
            assert r.status_code == 200, (n, r.text)
            assert len(r.json()["colors"]) == 4
        # A body larger than the whole budget is still refused.
        too_big = image * 4
        problem = h.problem(c.post("/v1/palette", content=pieces(too_big, 5)), 503, "server_busy")
        assert problem["limit_bytes_in_flight"] == 3 * len(image)
