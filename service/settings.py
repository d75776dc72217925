"""Typed settings, read once from ``PALETTE_*`` environment variables (and an optional .env)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .security.settings import SecuritySettings
from .webhooks.settings import WebhookSettings

__all__ = ["Settings", "load_dotenv"]

_MiB = 1024 * 1024


def _parse_api_keys(raw: str) -> dict[str, str]:
    """``key`` or ``tenant:key`` entries separated by commas -> {key: tenant}.

    A bare key gets a tenant name derived from its hash, so the key itself is never logged or
    stored next to job records.
    """
    keys: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, key = item.partition(":")
        if not sep:
            key, tenant = tenant, "key-" + hashlib.sha256(tenant.encode()).hexdigest()[:12]
        if not key or not tenant:
            raise ValueError("PALETTE_API_KEYS entries are 'key' or 'tenant:key'")
        keys[key] = tenant
    return keys


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Each field maps to ``PALETTE_<NAME>``."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("palette-data")
    workers: int = 2
    """Job worker threads, and also the number of sync palette requests computed at once."""

    api_keys: dict[str, str] = field(default_factory=dict, repr=False)
    """{api key: tenant}. Empty: the service is open and every caller is tenant ``public``."""

    # Limits (each one is named, with its value, in the problem document that enforces it).
    max_request_bytes: int = 2048 * _MiB
    """Largest ``POST /v1/jobs`` body (all parts together)."""
    max_sync_bytes: int = 64 * _MiB
    """Largest ``POST /v1/palette`` or ``POST /v1/analyze`` body."""
    max_images_per_job: int = 10_000
    """Images per job, counting every ZIP entry."""
    max_pixels: int = 100_000_000
    """Pixels per image, checked from the header before decoding."""
    max_colors: int = 64
    zip_max_entries: int = 10_000
    """Entries per ZIP (central directory), checked at upload."""
    zip_max_entry_bytes: int = 64 * _MiB
    """One ZIP entry, inflated."""
    zip_max_total_bytes: int = 4 * 1024 * _MiB
    """All entries of one ZIP, inflated."""
    zip_max_ratio: float = 100.0
    """Inflated bytes per compressed byte (ZIP bombs)."""

    # Behaviour
    pixel_budget: int | None = None
    """Default shrink-on-load target in pixels for the library (None: the library default)."""
    retention_seconds: float = 7 * 24 * 3600.0
    idempotency_seconds: float = 24 * 3600.0
    lease_seconds: float = 15.0
    drain_grace_seconds: float = 10.0
    """SIGTERM: how long running images may take to finish before they are handed back."""
    drain_delay_seconds: float = 0.0
    """SIGTERM: keep answering (readyz 503) at least this long, so load balancers notice."""
    sweep_interval_seconds: float = 60.0
    palette_cache_entries: int = 10_000
    retry_after_seconds: int = 1
    max_worker_crashes: int = 3
    """An image in flight when its worker process died this many times is given up."""
    log_level: str = "info"

    # Secrets every node must share; unset, each is generated once and kept in the backend.
    url_signing_keys: str = field(default="", repr=False)
    """``kid:secret,kid2:secret``: the first signs download links, all verify."""

    # Scale-out: where state and blobs live, how large jobs are cut and shared out.
    store: str = ""
    """Empty: SQLite in the data dir. ``redis://host:6379/0`` or ``redis+cluster://h:7000,...``."""
    blobs: str = ""
    """Empty: the data dir. ``s3://bucket/prefix`` (endpoint and keys from ``AWS_*``)."""
    presigned_downloads: bool = False
    """S3 blobs: a signed download link answers 307 to a presigned S3 GET of the results (same
    expiry, same Content-Disposition), so the bytes flow from S3, not through an API node."""
    redis_partitions: int = 8
    """Redis: tenants are spread over this many partitions (Cluster slots); fixed per deployment."""
    chunk_images: int = 64
    """Redis: a job with more images is split into chunks of this many, run by any workers."""
    tenant_max_running: int = 0
    """Redis: chunks (or jobs) of one tenant running at once; 0 = no cap."""
    tenant_max_queued_images: int = 0
    """Images in one tenant's unfinished jobs before new jobs get 429; 0 = no limit."""
    max_queued_images: int = 0
    """Images in everyone's unfinished jobs before new jobs get 503; 0 = no limit."""

    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    """``PALETTE_WEBHOOK_*`` and ``PALETTE_EGRESS_ALLOW_CIDRS``."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    """Auth, OIDC, rate limits, audit, encryption and HTTP guards (service/security/)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``PALETTE_*`` variables; keyword overrides win (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "webhooks": WebhookSettings.from_env(env),
            "security": SecuritySettings.from_env(env),
        }
        for f in dataclasses.fields(cls):
            if f.name in ("webhooks", "security"):
                continue
            raw = env.get("PALETTE_" + f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = _cast(f.name, raw)
            except ValueError as exc:
                raise ValueError(f"PALETTE_{f.name.upper()}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        settings = cls(**values)
        settings.validate()
        return settings

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    def validate(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.lease_seconds <= 0.3:
            raise ValueError("lease_seconds must be above 0.3")
        if self.max_worker_crashes < 1:
            raise ValueError("max_worker_crashes must be at least 1")
        for name in ("max_request_bytes", "max_sync_bytes", "max_images_per_job", "max_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.presigned_downloads and not self.blobs.startswith("s3://"):
            raise ValueError("presigned_downloads needs S3 blobs (PALETTE_BLOBS=s3://bucket/prefix)")
        if self.presigned_downloads and self.security.encryption_keys:
            raise ValueError(
                "presigned_downloads cannot be used with encryption at rest: the bucket holds only "
                "ciphertext, which a presigned GET would hand out as it is"
            )

    def public_view(self) -> dict[str, Any]:
        """The settings in force, safe to log: API keys are replaced by the tenant names."""
        view = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        view["api_keys"] = sorted(set(self.api_keys.values())) if self.api_keys else "open"
        view["data_dir"] = str(self.data_dir)
        view["url_signing_keys"] = "configured" if self.url_signing_keys else "generated"
        del view["webhooks"], view["security"]
        view.update(self.webhooks.public())
        view.update(self.security.public())
        return view


_INT_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type in ("int", "int | None")}
_FLOAT_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type == "float"}
_BOOL_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type == "bool"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def _cast(name: str, raw: str) -> Any:
    if name == "api_keys":
        return _parse_api_keys(raw)
    if name == "data_dir":
        return Path(raw)
    if name in _INT_FIELDS:
        if raw.strip().lower() in {"", "none"} and name == "pixel_budget":
            return None
        return int(raw)
    if name in _FLOAT_FIELDS:
        return float(raw)
    if name in _BOOL_FIELDS:
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(f"expected true or false, got {raw!r}")
        return word in _TRUE
    return raw


def load_dotenv(path: str | os.PathLike[str] = ".env") -> None:
    """Read ``KEY=VALUE`` lines into the environment without overriding what is already set."""
    p = Path(path)
    if not p.is_file():
        return
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))
