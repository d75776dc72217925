"""Standard Webhooks signing: secrets, message ids and the ``webhook-*`` headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (the form Standard Webhooks receivers accept)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The raw HMAC key inside a ``whsec_`` secret."""
    body = secret.removeprefix(SECRET_PREFIX)
    key = base64.b64decode(body + "==")
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def tenant_secret(master: str, tenant: str) -> str:
    """The ``whsec_`` secret that signs ``tenant``'s per-job callbacks, derived from the
    deployment's callback secret: each tenant can verify its own callbacks and no other's
    (HMAC-SHA256 of the tenant name under the master key)."""
    derived = hmac.new(secret_key(master), b"callback-tenant:" + tenant.encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.b64encode(derived.digest()).decode("ascii")


def new_message_id() -> str:
    """A unique, URL-safe ``webhook-id`` (stable across retries of the same message)."""
    return "msg_" + secrets.token_urlsafe(18)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 over "id.timestamp.body">``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(
    secrets_in_force: Iterable[str], msg_id: str, timestamp: int, body: bytes
) -> str:
    """Space-separated signatures, one per secret in force (several while a rotation overlaps)."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets_in_force)


def webhook_headers(
    secrets_in_force: Iterable[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_in_force, msg_id, timestamp, body),
        "content-type": "application/json",
    }
