"""PaletteCache (bounded, shared) and SecretStore (one value per name for every node)."""

from __future__ import annotations

from collections.abc import Callable

from conformancetools import FakeClock

from service.backends import Backends


def test_palette_cache_round_trip_and_bound(backend: Backends, clock: FakeClock) -> None:
    cache = backend.palette_cache
    assert cache.cache_get("k0") is None
    for n in range(5):
        cache.cache_put({f"k{n}": b"x%d" % n})
        clock.advance(1)
    assert cache.cache_get("k4") == b"x4"
    for tidy in backend.housekeeping:
        tidy()
    assert cache.cache_get("k0") is None and cache.cache_get("k4") == b"x4"
    keys = cache.cache_keys()
    assert keys is None or sorted(keys) == ["k2", "k3", "k4"]


def test_secrets_are_made_once_for_every_node(open_backend: Callable[..., Backends]) -> None:
    one, two = open_backend(), open_backend()
    made: list[str] = []

    def make() -> str:
        made.append(f"secret-{len(made)}")
        return made[-1]

    first = one.secrets.get_or_create("signing", make)
    assert two.secrets.get_or_create("signing", make) == first
    assert one.secrets.get_or_create("other", make) != first
