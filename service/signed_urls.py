"""Signed, expiring download links for job results (S3/GCS presign semantics).

``POST /v1/jobs/{id}/download-url`` (authenticated like every job route) returns a URL such as::

    /v1/downloads/jobs/{id}/results?disposition=attachment&expires=1767225600&kid=k1&sig=...

that serves the job's results to anyone holding it until ``expires``. The signature is
HMAC-SHA256 over the method, the path and every query parameter but ``sig`` itself (so the expiry,
the key id and every response-shaping parameter are covered, and adding a parameter breaks it),
keyed by the secret named by ``kid``. Keys come from ``PALETTE_URL_SIGNING_KEYS``
(``kid1:secret,kid2:secret``: the first signs, all verify, so keys rotate by prepending a new one);
without it a key is generated once and kept in the backend, so every node verifies every link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from .clock import Clock
from .jobs.interfaces import SecretStore
from .problems import Problem
from .routes import api_route
from .routes.jobs import job_results
from .settings import Settings
from .state import app_state
from .uploads import read_json_object

__all__ = ["SigningKeys", "UrlSigner", "routes", "signing_keys"]

DEFAULT_EXPIRES_IN = 900
MAX_EXPIRES_IN = 7 * 24 * 3600
DISPOSITIONS = ("attachment", "inline")
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
FILENAME_PATTERN = re.compile(r"^[A-Za-z0-9 _.,()+-]{1,128}$")


class SignatureInvalid(Exception):
    code = "signature_invalid"


class UrlExpired(Exception):
    code = "url_expired"

    def __init__(self, expired_at: int) -> None:
        super().__init__(f"the URL expired at {expired_at}")
        self.expired_at = expired_at


@dataclass(frozen=True)
class SigningKeys:
    """Ordered ``(kid, secret)`` pairs: the first signs, every one verifies."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one URL signing key is needed")

    @property
    def current(self) -> tuple[str, bytes]:
        return self.keys[0]

    def get(self, kid: str) -> bytes | None:
        for key_id, secret in self.keys:
            if hmac.compare_digest(key_id.encode(), kid.encode()):
                return secret
        return None

    @classmethod
    def parse(cls, text: str) -> SigningKeys:
        pairs: list[tuple[str, bytes]] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            kid, sep, secret = item.partition(":")
            if not sep or not _KID.match(kid) or len(secret) < 16:
                raise ValueError(
                    "PALETTE_URL_SIGNING_KEYS entries are 'kid:secret' (kid: letters, digits, "
                    "'_.-', at most 32; secret: at least 16 characters)"
                )
            pairs.append((kid, secret.encode()))
        return cls(tuple(pairs))


def _new_key() -> str:
    return f"k{secrets.token_hex(4)}:{secrets.token_urlsafe(32)}"


def signing_keys(settings: Settings, shared: SecretStore) -> SigningKeys:
    """``PALETTE_URL_SIGNING_KEYS``, or one key generated once for the whole deployment."""
    configured = settings.url_signing_keys.strip()
    return SigningKeys.parse(configured or shared.get_or_create("url_signing_keys", _new_key))


def canonical(method: str, path: str, params: Sequence[tuple[str, str]]) -> bytes:
    """What is signed: method, path and the sorted, percent-encoded parameters (``sig`` excluded)."""
    items = sorted((k, v) for k, v in params if k != "sig")
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items)
    return f"{method.upper()}\n{path}\n{query}".encode()


def _mac(secret: bytes, message: bytes) -> str:
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class UrlSigner:
    def __init__(self, keys: SigningKeys, clock: Clock) -> None:
        self.keys = keys
        self.clock = clock

    def sign(
        self, path: str, params: Mapping[str, str], expires_at: int, method: str = "GET"
    ) -> str:
        """The path plus a query string that carries the signature."""
        kid, secret = self.keys.current
        signed = [*params.items(), ("expires", str(expires_at)), ("kid", kid)]
        sig = _mac(secret, canonical(method, path, signed))
        return path + "?" + urlencode([*signed, ("sig", sig)])

    def verify(self, method: str, path: str, params: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Check a presented URL; returns its parameters. Raises SignatureInvalid / UrlExpired."""
        names = [k for k, _ in params]
        if any(names.count(n) > 1 for n in names):
            raise SignatureInvalid("a parameter appears more than once")
        values = dict(params)
        sig, kid, expires = values.get("sig"), values.get("kid"), values.get("expires")
        if not sig or not kid or not expires:
            raise SignatureInvalid("the URL lacks its signature, key id or expiry")
        secret = self.keys.get(kid)
        if secret is None:
            raise SignatureInvalid("the URL was signed with a key this service does not hold")
        # HEAD is GET without a body: a URL signed for GET may be probed with HEAD.
        signed_method = "GET" if method.upper() == "HEAD" else method
        expected = _mac(secret, canonical(signed_method, path, params))
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise SignatureInvalid("the signature does not match the URL")
        # Only a key holder gets this far; still, int() would take "+1", " 1" or non-ASCII digits.
        if not (expires.isascii() and expires.isdigit()):
            raise SignatureInvalid("the expiry is not a number")
        expires_at = int(expires)
        if expires_at <= self.clock.now():
            raise UrlExpired(expires_at)
        return values


def int_in_range(value: object, low: int, high: int) -> TypeGuard[int]:
    """A JSON integer (``bool`` excluded, though Python counts it as one) from low to high."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def content_disposition(disposition: str, filename: str) -> str:
    return f'{disposition}; filename="{filename}"'


def download_options(body: Mapping[str, object], job_id: str) -> tuple[int, dict[str, str]]:
    """Validate the request body of ``POST .../download-url``; -> (expires_in, signed params).

    Raises ``ValueError`` with ``(field, message)`` on a bad value.
    """
    expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
    if not int_in_range(expires_in, 1, MAX_EXPIRES_IN):
        raise ValueError(
            "expires_in", f"expires_in must be whole seconds from 1 to {MAX_EXPIRES_IN}"
        )
    disposition = body.get("disposition", "attachment")
    if disposition not in DISPOSITIONS:
        raise ValueError("disposition", f"disposition must be one of {', '.join(DISPOSITIONS)}")
    filename = body.get("filename", f"{job_id}-results.json")
    if not isinstance(filename, str) or not FILENAME_PATTERN.match(filename):
        raise ValueError(
            "filename", "filename must be 1-128 characters of letters, digits, space and _.,()+-"
        )
    unknown = sorted(set(body) - {"expires_in", "disposition", "filename"})
    if unknown:
        raise ValueError(unknown[0], f"unknown field {unknown[0]!r}")
    return expires_in, {"disposition": str(disposition), "filename": filename}


# -- routes ----------------------------------------------------------------------------------------

DOWNLOAD_PATH = "/v1/downloads/jobs/{job_id}/results"


MAX_REQUEST_BYTES = 4096


async def create_download_url(request: Request) -> Response:
    """``POST /v1/jobs/{id}/download-url``: a link to the results that needs no other credential."""
    state = app_state(request)
    jobs, signer = state["jobs"], state["signer"]
    job_id = request.path_params["job_id"]
    body = await read_json_object(request, limit=MAX_REQUEST_BYTES, required=False)
    try:
        expires_in, params = download_options(body, job_id)
    except ValueError as exc:
        field, message = exc.args
        raise Problem(422, "invalid_download_request", message + ".", field=field) from exc
    job = await jobs.get(job_id, request.scope["tenant"])
    jobs.finished_result(job)  # 409 while the job runs or when it has no results
    now = signer.clock.now()
    expires_at = int(now) + expires_in
    if job.expires_at is not None:
        # A link never outlives the data it points to (retention removes the results).
        expires_at = min(expires_at, int(job.expires_at))
    path = DOWNLOAD_PATH.format(job_id=job_id)
    signed = signer.sign(path, params, expires_at)
    # Absolute only with a configured public address: the Host header is the client's to
    # choose, and a link built from it could point anywhere.
    base = state["runtime"].settings.security.public_base_url
    return JSONResponse(
        {
            "url": base + signed,
            "method": "GET",
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)),
            "expires_in": max(0, expires_at - int(now)),
        },
        headers={"Cache-Control": "no-store"},
    )


async def signed_download(request: Request) -> Response:
    """``GET /v1/downloads/jobs/{id}/results?...&sig=``: the results, for whoever holds the link."""
    state = app_state(request)
    signer = state["signer"]
    try:
        values = signer.verify(
            request.method, request.scope["path"], list(request.query_params.multi_items())
        )
    except SignatureInvalid as exc:
        raise Problem(403, "signature_invalid", f"The download link is not valid: {exc}.") from exc
    except UrlExpired as exc:
        raise Problem(
            403,
            "url_expired",
            "The download link has expired; ask for a new one.",
            expired_at=exc.expired_at,
        ) from exc
    if values.get("disposition") not in DISPOSITIONS or "filename" not in values:
        raise Problem(403, "signature_invalid", "The download link lacks its response parameters.")
    jobs = state["jobs"]
    job = await jobs.get(request.path_params["job_id"], None)
    disposition = content_disposition(values["disposition"], values["filename"])
    if state["runtime"].settings.presigned_downloads:
        # The bytes come from S3 itself, under a presigned GET that expires with this link.
        key, _etag, _size = jobs.finished_result(job)
        left = max(1, int(values["expires"]) - int(signer.clock.now()))
        url = jobs.blobs.presigned_get(
            key, left, content_type="application/json", content_disposition=disposition
        )
        if url is not None:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    # The signature stands in for the owner's credentials: serve as the job's tenant, through the
    # same code as GET /v1/jobs/{id}/results (ETag, If-None-Match, Range, streaming).
    request.scope["tenant"] = job.tenant
    response = await job_results(request)
    response.headers["Content-Disposition"] = disposition
    return response


routes: list[BaseRoute] = [
    api_route("/v1/jobs/{job_id}/download-url", POST=create_download_url),
    api_route(DOWNLOAD_PATH, GET=signed_download),
]
