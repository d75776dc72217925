"""A credential -> a :class:`Principal`, or the reason it is refused.

Three kinds of credential arrive the same way (``Authorization: Bearer`` or ``X-API-Key``):
product keys (``pal_live_...``, looked up in the backend), keys from ``PALETTE_API_KEYS``
(each an admin of its tenant, as before roles existed) and OIDC JWTs. With none configured
and no key ever created, the service is open: every caller is the admin of tenant ``public``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..clock import Clock
from ..offload import Offload
from . import api_keys
from .interfaces import ApiKeyRecord, ApiKeyStore
from .oidc import InvalidToken, OidcVerifier, looks_like_jwt
from .principal import Principal

__all__ = ["PUBLIC_TENANT", "AuthFailure", "Authenticator"]

PUBLIC_TENANT = "public"
# A verified key is trusted from memory this long (revocation in this process is immediate;
# on other nodes it takes effect within this time).
_KEY_CACHE_SECONDS = 10.0
# last_used_at is written at most this often per key.
_TOUCH_EVERY_SECONDS = 60.0
_OPEN_CHECK_SECONDS = 2.0
_TOKEN_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class AuthFailure(Exception):
    code: str
    detail: str


class Authenticator:
    def __init__(
        self,
        legacy_keys: Mapping[str, str],
        store: ApiKeyStore,
        pepper: bytes,
        clock: Clock,
        offload: Offload,
        oidc: OidcVerifier | None,
    ) -> None:
        # PALETTE_API_KEYS, found by their hash: the lookup takes the same time for every key.
        self._legacy = {hashlib.sha256(k.encode()).hexdigest(): t for k, t in legacy_keys.items()}
        self.store = store
        self.pepper = pepper
        self.clock = clock
        self.offload = offload
        self.oidc = oidc
        self._cache: dict[str, tuple[ApiKeyRecord, float]] = {}
        # Verified tokens by their hash: a client sends the same token for minutes, and an
        # RS256 check costs more than everything else the gate does.
        self._tokens: dict[str, tuple[Principal, float, int]] = {}
        self._open_until = -1.0
        self._open = not self._legacy and oidc is None

    async def is_open(self) -> bool:
        """Open: nothing configured and no key ever created (checked again every 2 s)."""
        if not self._open:
            return False
        now = time.monotonic()
        if now >= self._open_until:
            self._open = not await self.offload(self.store.has_keys)
            self._open_until = now + _OPEN_CHECK_SECONDS
        return self._open

    def forget(self, key_id: str) -> None:
        """A key changed (revoked): the next use reads it from the store again."""
        self._cache.pop(key_id, None)
        self._open = False

    async def authenticate(self, credential: str | None, client: str) -> Principal:
        if await self.is_open():
            return Principal(PUBLIC_TENANT, "admin", "anonymous", "ip:" + client)
        if not credential:
            raise AuthFailure(
                "unauthorized",
                "A credential is required (Authorization: Bearer <key or token>, or X-API-Key).",
            )
        if credential.startswith(api_keys.KEY_PREFIX):
            return await self._product_key(credential)
        if self.oidc is not None and looks_like_jwt(credential):
            return await self._token(credential)
        tenant = self._legacy.get(hashlib.sha256(credential.encode()).hexdigest())
        if tenant is None:
            raise AuthFailure("invalid_api_key", "The API key is not valid.")
        actor = "legacy:" + hashlib.sha256(credential.encode()).hexdigest()[:12]
        return Principal(tenant, "admin", actor, actor)

    async def _product_key(self, key: str) -> Principal:
        key_id = api_keys.parse(key)
        if key_id is None:
            raise AuthFailure("invalid_api_key", "The API key is not valid.")
        digest = api_keys.digest(self.pepper, key)
        cached = self._cache.get(key_id)
        if (
            cached is not None
            and cached[1] > time.monotonic()
            and hmac.compare_digest(cached[0].digest, digest)
        ):
            record = cached[0]
        else:
            found = await self.offload(self._load, key_id)
            if found is None or not hmac.compare_digest(found.digest, digest):
                raise AuthFailure("invalid_api_key", "The API key is not valid.")
            record = found
            self._cache[key_id] = (record, time.monotonic() + _KEY_CACHE_SECONDS)
        now = self.clock.now()
        if record.revoked_at is not None:
            raise AuthFailure("api_key_revoked", "The API key was revoked.")
        if record.expires_at is not None and now >= record.expires_at:
            raise AuthFailure("api_key_expired", "The API key has expired.")
        actor = "api_key:" + record.key_id
        return Principal(record.tenant, record.role, actor, actor)

    def _load(self, key_id: str) -> ApiKeyRecord | None:
        record = self.store.get(key_id)
        now = self.clock.now()
        if (
            record is not None
            and record.usable(now)
            and (record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY_SECONDS)
        ):
            self.store.touch(key_id, now)
        return record

    async def _token(self, token: str) -> Principal:
        assert self.oidc is not None
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens.get(digest)
        # Fetching the keys again (a rotation) makes every cached token be checked anew.
        if (
            cached is not None
            and time.time() < cached[1]
            and cached[2] == self.oidc.keys.generation
        ):
            return cached[0]
        try:
            kid, alg = self.oidc.header(token)
            key = self.oidc.keys.fresh_key(kid)
            if key is None:
                key = await self.offload(self.oidc.keys.key, kid)
            principal, expires_at = self.oidc.verify(token, key, alg)
        except InvalidToken as exc:
            raise AuthFailure("invalid_token", f"The bearer token is not valid: {exc}.") from None
        if len(self._tokens) >= _TOKEN_CACHE_ENTRIES:
            self._tokens.clear()
        # Trusted from memory until it expires, and never longer than the key cache.
        self._tokens[digest] = (
            principal,
            min(expires_at, time.time() + _KEY_CACHE_SECONDS),
            self.oidc.keys.generation,
        )
        return principal
