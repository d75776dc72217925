"""OAuth2 / OIDC bearer tokens: JWTs checked against the issuer's published keys (PyJWT).

The keys (JWKS) are fetched from ``PALETTE_OIDC_JWKS_URL`` or the issuer's discovery document
and cached: fetched again after ``oidc_jwks_cache_seconds``, or at once when a token names a key
id the cache lacks (the IdP rotated its keys), but never more than once per
``oidc_refresh_cooldown_seconds`` (forged key ids cannot turn into a flood of fetches). When the
IdP cannot be reached, the last good keys keep serving for ``oidc_stale_seconds`` past their
expiry, then tokens are refused until it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from ..security.settings import SecuritySettings
from .principal import Principal, highest_role

__all__ = ["InvalidToken", "JwksCache", "OidcVerifier", "looks_like_jwt"]

log = logging.getLogger("service.auth")


class InvalidToken(Exception):
    """The bearer token is not one this service accepts (the message says why)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


class JwksCache:
    """The issuer's signing keys by key id, with rotation, a refresh cooldown and a stale
    window. ``fetch`` returns the JWKS document (a dict); it blocks, so callers run
    :meth:`key` on a worker thread unless :meth:`fresh_key` answered."""

    def __init__(
        self,
        settings: SecuritySettings,
        fetch: Callable[[], dict[str, Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0
        self.generation = 0
        """Grows whenever a fetch replaces the keys."""

    def fresh_key(self, kid: str) -> jwt.PyJWK | None:
        """The key from memory when the cache is fresh (no I/O: safe on the event loop)."""
        fetched = self._fetched_at
        if fetched is None or self._clock() - fetched >= self.settings.oidc_jwks_cache_seconds:
            return None
        return self._keys.get(kid)

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            s = self.settings
            fresh = (
                self._fetched_at is not None and now - self._fetched_at < s.oidc_jwks_cache_seconds
            )
            if not (fresh and kid in self._keys) and (
                self._tried_at is None or now - self._tried_at >= s.oidc_refresh_cooldown_seconds
            ):
                self._refresh(now)
            key = self._keys.get(kid)
            usable_until = (
                (self._fetched_at or -1e18) + s.oidc_jwks_cache_seconds + s.oidc_stale_seconds
            )
            if key is None:
                raise InvalidToken(f"the token's key id {kid!r} is not one the issuer publishes")
            if now >= usable_until:
                raise InvalidToken("the issuer's keys could not be fetched for too long")
            return key

    def _refresh(self, now: float) -> None:
        self._tried_at = now
        self.fetches += 1
        try:
            document = self._fetch()
            keys = jwt.PyJWKSet.from_dict(document)
        except (httpx.HTTPError, jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            log.warning("OIDC keys could not be fetched (keeping the last good ones): %s", exc)
            return
        self._keys = {k.key_id: k for k in keys.keys if k.key_id}
        self._fetched_at = now
        self.generation += 1


class OidcVerifier:
    """Bearer JWT -> :class:`Principal` (tenant and role from the configured claims)."""

    def __init__(self, settings: SecuritySettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.algorithms = [a.strip() for a in settings.oidc_algorithms.split(",") if a.strip()]
        self._client = client or httpx.Client(timeout=5.0, follow_redirects=False)
        self._jwks_url = settings.oidc_jwks_url or None
        self.keys = JwksCache(settings, self._fetch_jwks)

    def close(self) -> None:
        self._client.close()

    def _fetch_jwks(self) -> dict[str, Any]:
        if self._jwks_url is None:
            issuer = self.settings.oidc_issuer.rstrip("/")
            discovery = self._client.get(issuer + "/.well-known/openid-configuration")
            discovery.raise_for_status()
            self._jwks_url = str(discovery.json()["jwks_uri"])
        response = self._client.get(self._jwks_url)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def header(self, token: str) -> tuple[str, str]:
        """``(kid, alg)`` from the unverified header, refusing what no key can verify."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is malformed ({exc})") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise InvalidToken(f"the token's algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key id (kid)")
        return kid, alg

    def verify(self, token: str, key: jwt.PyJWK, alg: str) -> tuple[Principal, float]:
        """The token's principal and its expiry (epoch seconds)."""
        s = self.settings
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=s.oidc_audience,
                issuer=s.oidc_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token was refused ({exc})") from None
        tenant = claims.get(s.oidc_tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise InvalidToken(f"the token carries no {s.oidc_tenant_claim!r} claim")
        roles = claims.get(s.oidc_roles_claim, [])
        if isinstance(roles, str):
            roles = roles.split()
        role = highest_role(roles if isinstance(roles, list) else [])
        subject = str(claims["sub"])
        return Principal(tenant, role, "oidc:" + subject, "oidc:" + subject), float(claims["exp"])
