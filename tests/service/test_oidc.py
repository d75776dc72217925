"""OIDC bearer tokens against a loopback provider that signs real tokens and rotates its keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from servertools import LoopbackIdP

from service.auth.oidc import InvalidToken, JwksCache
from service.security.settings import SecuritySettings


@pytest.fixture
def idp() -> Iterator[LoopbackIdP]:
    provider = LoopbackIdP()
    yield provider
    provider.close()


def oidc_env(idp: LoopbackIdP, **extra: str) -> dict[str, str]:
    return {
        "PALETTE_OIDC_ISSUER": idp.issuer,
        "PALETTE_OIDC_AUDIENCE": "palette-api",
        "PALETTE_OIDC_REFRESH_COOLDOWN_SECONDS": "1",
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.e2e
def test_tokens_carry_tenant_and_role_and_survive_a_key_rotation(
    server_factory: Any, idp: LoopbackIdP, h: Any
) -> None:
    server = server_factory(oidc_env(idp))
    with httpx.Client(base_url=server.url, timeout=10) as c:
        member = idp.token(roles=["member"], tenant="acme")
        job = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=bearer(member))
        assert job.status_code == 202
        assert c.get(job.headers["location"], headers=bearer(member)).json()["id"]
        # Another tenant's token does not see acme's job.
        other = idp.token(roles=["admin"], tenant="globex")
        h.problem(c.get(job.headers["location"], headers=bearer(other)), 404, "job_not_found")
        assert idp.hits == 1  # the keys were fetched once and cached
        # The IdP rotates: the old key is gone, tokens now name a new kid.
        idp.rotate(keep_old=False)
        time.sleep(1.1)  # past the refresh cooldown
        fresh = idp.token(roles=["viewer"], tenant="acme")
        assert c.get("/v1/jobs", headers=bearer(fresh)).status_code == 200
        assert idp.hits == 2
        # A token signed with the retired key names a kid the issuer no longer publishes.
        body = h.problem(c.get("/v1/jobs", headers=bearer(member)), 401, "invalid_token")
        assert "not one the issuer publishes" in body["detail"]


@pytest.mark.e2e
def test_forged_key_ids_cannot_make_the_service_hammer_the_idp(
    server_factory: Any, idp: LoopbackIdP, h: Any
) -> None:
    server = server_factory(oidc_env(idp, PALETTE_OIDC_REFRESH_COOLDOWN_SECONDS="30"))
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/v1/jobs", headers=bearer(idp.token())).status_code == 200
        for n in range(30):
            forged = idp.token(kid=f"forged-{n}")
            h.problem(c.get("/v1/jobs", headers=bearer(forged)), 401, "invalid_token")
    assert idp.hits == 1


@pytest.mark.e2e
def test_an_explicit_jwks_url_and_the_algorithm_allow_list(
    server_factory: Any, idp: LoopbackIdP, h: Any
) -> None:
    server = server_factory(
        oidc_env(idp, PALETTE_OIDC_JWKS_URL=idp.issuer + "/jwks", PALETTE_OIDC_ALGORITHMS="ES256")
    )
    with httpx.Client(base_url=server.url, timeout=10) as c:
        body = h.problem(c.get("/v1/jobs", headers=bearer(idp.token())), 401, "invalid_token")
        assert "'RS256' is not accepted" in body["detail"]
        hs = jwt.encode({"sub": "x"}, "a-shared-secret-of-32-bytes-long!", algorithm="HS256")
        h.problem(c.get("/v1/jobs", headers=bearer(hs)), 401, "invalid_token")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_an_idp_outage_serves_the_last_keys_for_a_bounded_time(idp: LoopbackIdP) -> None:
    settings = SecuritySettings(
        oidc_issuer=idp.issuer,
        oidc_audience="palette-api",
        oidc_jwks_cache_seconds=10,
        oidc_refresh_cooldown_seconds=5,
        oidc_stale_seconds=20,
    )
    clock = FakeClock()

    def fetch() -> dict[str, Any]:
        r = httpx.get(idp.issuer + "/jwks", timeout=5)
        r.raise_for_status()
        document: dict[str, Any] = r.json()
        return document

    cache = JwksCache(settings, fetch, clock)
    kid = idp.keys[0][0]
    assert cache.key(kid).key_id == kid and cache.fetches == 1
    assert cache.fresh_key(kid) is not None
    idp.down = True
    clock.t += 12  # past the cache time: a refresh is tried, fails, the old keys serve
    assert cache.fresh_key(kid) is None
    assert cache.key(kid).key_id == kid and cache.fetches == 2
    clock.t += 2  # within the cooldown: no new attempt
    assert cache.key(kid).key_id == kid and cache.fetches == 2
    clock.t += 17  # 31 s after the last good fetch: beyond cache + stale
    with pytest.raises(InvalidToken, match="could not be fetched for too long"):
        cache.key(kid)
    idp.down = False
    clock.t += 5
    assert cache.key(kid).key_id == kid  # the IdP is back
