"""PaletteIndex: search by color, the same answers on every backend."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from conformancetools import FakeClock

from service.backends import Backends
from service.jobs.interfaces import InvalidCursor
from service.search.interfaces import IndexedColor, IndexedPalette, SearchHit

QUERY = (0.6, 0.05, -0.02)


def palette(
    tenant: str,
    ref: str,
    *oklabs: tuple[float, float, float],
    expires_at: float = 2e9,
    job_id: str | None = None,
    item: int | None = None,
) -> IndexedPalette:
    colors = tuple(
        IndexedColor(lab, f"#{n:06x}", round(1 / len(oklabs), 4)) for n, lab in enumerate(oklabs)
    )
    return IndexedPalette(tenant, ref, colors, expires_at, job_id, item)


def near(distance: float) -> tuple[float, float, float]:
    """A color ``distance`` away from the query along L."""
    return (QUERY[0] + distance, QUERY[1], QUERY[2])


def everything(backend: Backends, tenant: str, radius: float, limit: int) -> list[SearchHit]:
    hits, cursor = backend.search.search(tenant, QUERY, radius, limit=limit)
    while cursor is not None:
        more, cursor = backend.search.search(tenant, QUERY, radius, limit=limit, cursor=cursor)
        hits += more
    return hits


def test_hits_are_nearest_first_by_each_palettes_nearest_color(backend: Backends) -> None:
    backend.search.add(
        [
            palette("t1", "/far", near(0.04), (0.1, 0.1, 0.1)),
            palette("t1", "/close", (0.9, 0.0, 0.0), near(0.01), near(0.03)),
            palette("t1", "/job", near(0.02), job_id="job-1", item=3),
            palette("t1", "/out", near(0.06)),
        ]
    )
    hits, cursor = backend.search.search("t1", QUERY, 0.05, limit=10)
    assert cursor is None
    assert [h.ref for h in hits] == ["/close", "/job", "/far"]
    assert [round(h.distance, 9) for h in hits] == [0.01, 0.02, 0.04]
    close = hits[0]
    assert close.color.hex == "#000001" and close.color.fraction == pytest.approx(0.3333)
    assert close.color.oklab == pytest.approx(near(0.01))
    assert (close.job_id, close.item) == (None, None)
    assert (hits[1].job_id, hits[1].item) == ("job-1", 3)


def test_the_radius_is_a_ball_not_a_box(backend: Backends) -> None:
    corner = (QUERY[0] + 0.03, QUERY[1] + 0.03, QUERY[2] + 0.03)  # in the box, 0.052 away
    backend.search.add([palette("t1", "/corner", corner), palette("t1", "/edge", near(0.049))])
    assert [h.ref for h in backend.search.search("t1", QUERY, 0.05, limit=5)[0]] == ["/edge"]
    assert len(backend.search.search("t1", QUERY, 0.06, limit=5)[0]) == 2


def test_tenants_never_see_each_other(backend: Backends) -> None:
    backend.search.add([palette("t1", "/a", near(0.0)), palette("t2", "/a", near(0.01))])
    assert [h.distance for h in backend.search.search("t2", QUERY, 0.05, limit=5)[0]] == [
        pytest.approx(0.01)
    ]
    assert backend.search.search("t3", QUERY, 1.0, limit=5) == ([], None)


def test_pages_cover_every_hit_once_in_order_ties_included(backend: Backends) -> None:
    rng = random.Random(7)
    entries = [
        palette("t1", f"/p{n}", near(rng.choice([0.0, 0.01, 0.02, rng.uniform(0, 0.05)])))
        for n in range(37)
    ]
    backend.search.add(entries)
    whole, _ = backend.search.search("t1", QUERY, 0.05, limit=100)
    assert len(whole) == 37
    paged = everything(backend, "t1", 0.05, limit=5)
    assert [h.ref for h in paged] == [h.ref for h in whole]
    assert [h.distance for h in paged] == sorted(h.distance for h in paged)


def test_adding_a_ref_again_replaces_it(backend: Backends) -> None:
    backend.search.add([palette("t1", "/a", near(0.01), near(0.02))])
    backend.search.add([palette("t1", "/a", near(0.03))])
    hits, _ = backend.search.search("t1", QUERY, 0.05, limit=5)
    assert [(h.ref, round(h.distance, 9)) for h in hits] == [("/a", 0.03)]


def test_expired_palettes_are_not_found_and_housekeeping_removes_them(
    backend: Backends, clock: FakeClock
) -> None:
    now = clock.now()
    backend.search.add(
        [
            palette("t1", "/old", near(0.0), expires_at=now + 10),
            palette("t1", "/new", near(0.01), expires_at=now + 100),
        ]
    )
    clock.advance(20)
    assert [h.ref for h in backend.search.search("t1", QUERY, 0.05, limit=5)[0]] == ["/new"]
    for tidy in backend.housekeeping:
        tidy()
    clock.advance(-20)  # back before the expiry: only removal can hide it now
    assert [h.ref for h in backend.search.search("t1", QUERY, 0.05, limit=5)[0]] == ["/new"]


def test_a_deleted_jobs_palettes_go(backend: Backends) -> None:
    backend.search.add(
        [
            palette("t1", "/j1#0", near(0.0), job_id="j1", item=0),
            palette("t1", "/j1#1", near(0.01), job_id="j1", item=1),
            palette("t1", "/j2#0", near(0.02), job_id="j2", item=0),
            palette("t2", "/j1#0", near(0.0), job_id="j1", item=0),
        ]
    )
    backend.search.remove_job("t1", "j1")
    assert [h.ref for h in backend.search.search("t1", QUERY, 0.05, limit=5)[0]] == ["/j2#0"]
    assert len(backend.search.search("t2", QUERY, 0.05, limit=5)[0]) == 1


def test_every_node_searches_the_same_index(open_backend: Callable[..., Backends]) -> None:
    one, two = open_backend(), open_backend()
    one.search.add([palette("t1", "/a", near(0.01))])
    assert [h.ref for h in two.search.search("t1", QUERY, 0.05, limit=5)[0]] == ["/a"]


@pytest.mark.parametrize("cursor", ["junk", "", "bm90IGEgY3Vyc29y", "MHgxLjBwKzAg"])
def test_a_foreign_cursor_is_refused(backend: Backends, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        backend.search.search("t1", QUERY, 0.05, limit=5, cursor=cursor)


def test_distances_are_exact_euclidean_oklab(backend: Backends) -> None:
    lab = (0.55, 0.08, 0.01)
    backend.search.add([palette("t1", "/x", lab)])
    (hit,), _ = backend.search.search("t1", QUERY, 0.2, limit=1)
    assert hit.distance == pytest.approx(math.dist(lab, QUERY), abs=1e-12)
