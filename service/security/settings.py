"""Security settings: authentication, OIDC, rate limits, audit, encryption, HTTP guards.

Each field maps to ``PALETTE_<NAME>`` (``oidc_issuer`` -> ``PALETTE_OIDC_ISSUER``); the service
reads them as ``settings.security``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SecuritySettings", "parse_kek_ring"]

_MiB = 1024 * 1024
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def parse_kek_ring(text: str) -> tuple[tuple[str, bytes], ...]:
    """``kid:base64key,...`` -> ((kid, 32-byte key), ...); the first one encrypts."""
    ring: list[tuple[str, bytes]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        kid, sep, encoded = item.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True) if sep else b""
        except (binascii.Error, ValueError):
            key = b""
        if not _KID.match(kid) or len(key) != 32:
            raise ValueError(
                "entries are 'kid:base64key' with a kid of letters, digits and '_.-' (at most "
                "32) and a key of exactly 32 bytes (base64 of `head -c32 /dev/urandom`)"
            )
        if any(kid == k for k, _ in ring):
            raise ValueError(f"key id {kid!r} appears twice")
        ring.append((kid, key))
    return tuple(ring)


@dataclass(frozen=True)
class SecuritySettings:
    # -- the HTTP connection ----------------------------------------------------------------
    max_header_bytes: int = 64 * 1024
    """Request line plus header fields, in bytes (431 over it)."""
    max_headers: int = 100
    """Header fields per request (431 over it)."""
    header_timeout_seconds: float = 10.0
    """From a request's first byte to the end of its head (408)."""
    body_timeout_seconds: float = 30.0
    """Longest wait for the next piece of a request body (408)."""
    sync_deadline_seconds: float = 60.0
    """``POST /v1/palette`` and ``POST /v1/analyze`` answer within this (503 + Retry-After
    when they cannot)."""
    job_timeout_seconds: float = 24 * 3600.0
    """A job running longer than this is failed with ``job_timeout``."""
    max_sync_bytes_in_flight: int = 256 * _MiB
    """Bytes of sync request bodies held in memory at once, all requests together (503)."""
    public_base_url: str = ""
    """``https://palette.example.com``: absolute links (download URLs) start with it; unset,
    links are relative to the request's own path (never built from its ``Host`` header)."""
    hsts_seconds: int = 365 * 24 * 3600
    """``Strict-Transport-Security: max-age`` on HTTPS answers (0: not sent)."""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    # -- OAuth2 / OIDC bearer tokens ---------------------------------------------------------
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    """Unset: taken from the issuer's ``/.well-known/openid-configuration``."""
    oidc_tenant_claim: str = "tenant"
    oidc_roles_claim: str = "roles"
    oidc_algorithms: str = "RS256,ES256,PS256,EdDSA"
    oidc_jwks_cache_seconds: float = 300.0
    """Keys are fetched again after this long (and at once for an unknown ``kid``)."""
    oidc_refresh_cooldown_seconds: float = 30.0
    """At most one fetch per this many seconds, whatever tokens arrive."""
    oidc_stale_seconds: float = 3600.0
    """An unreachable IdP: the last good keys keep serving this long after they expired."""

    # -- rate limits -------------------------------------------------------------------------
    rate_limits: str = "100/second;6000/minute"
    """Per client (API key, token subject, or address when open), ``limits`` notation; empty:
    no rate limit."""
    rate_limit_tighten_factor: float = 0.5
    """Under saturation every limit is multiplied by this."""
    saturation_queued_jobs: int = 1000
    """Queued jobs at or above this count as saturation."""
    saturation_cpu: float = 0.9
    """The process using this share of every core (over the last seconds) is saturation."""
    max_active_jobs_per_tenant: int = 100
    """Queued plus running jobs per tenant (429 over it)."""

    # -- audit and encryption ----------------------------------------------------------------
    audit_key: str = field(default="", repr=False)
    """Keys the audit log's hash chain; unset, generated once and kept in the backend (keep it
    elsewhere for tamper evidence against whoever can write the data directory)."""
    encryption_keys: str = field(default="", repr=False)
    """``kid:base64key,...`` (32-byte keys): set, uploads, results and stored webhook bodies
    are encrypted at rest with the first key; every key decrypts."""

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def encryption_ring(self) -> tuple[tuple[str, bytes], ...]:
        return parse_kek_ring(self.encryption_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecuritySettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = "PALETTE_" + f.name.upper()
            raw = env.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = _cast(f.type, raw.strip())
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("max_header_bytes", "max_headers", "max_sync_bytes_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if not 0 < self.rate_limit_tighten_factor <= 1:
            raise ValueError("rate_limit_tighten_factor must be in (0, 1]")
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("PALETTE_OIDC_AUDIENCE is required with PALETTE_OIDC_ISSUER")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("TLS needs both a certificate file and a key file")
        if self.public_base_url and not re.match(r"^https?://[^/?#]+$", self.public_base_url):
            raise ValueError("PALETTE_PUBLIC_BASE_URL is a scheme and host, e.g. https://x.example")
        if self.rate_limits:
            from limits import parse_many

            parse_many(self.rate_limits)
        self.encryption_ring  # noqa: B018 - parsing is the check

    def public(self) -> dict[str, object]:
        """The settings in force without secrets (for the start-up log)."""
        view = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        view["audit_key"] = "configured" if self.audit_key else "generated"
        view["encryption_keys"] = [kid for kid, _ in self.encryption_ring] or "off"
        return view


def _cast(kind: object, raw: str) -> Any:
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw
