"""No secret ever reaches the logs: a full run at debug level, then a sweep of the server's log
for every key, secret, token and signature the run used or was handed."""

from __future__ import annotations

import base64
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from servertools import LoopbackIdP

from service.webhooks.signing import generate_secret

pytestmark = pytest.mark.e2e


def test_a_full_run_logs_no_secret(server_factory: Any, h: Any) -> None:
    idp = LoopbackIdP()
    legacy = "legacy-secret-api-key-7f3a9c"
    secrets: dict[str, str] = {
        "legacy api key": legacy,
        "url signing key": "k1:url-signing-secret-4b8e2d1f",
        "callback secret": generate_secret(),
        "encryption key": "ek1:" + base64.b64encode(os.urandom(32)).decode(),
        "audit key": "audit-chain-key-9d2c7e5a1b",
    }
    server = server_factory(
        {
            "PALETTE_LOG_LEVEL": "debug",
            "PALETTE_API_KEYS": f"acme:{legacy}",
            "PALETTE_URL_SIGNING_KEYS": secrets["url signing key"],
            "PALETTE_WEBHOOK_CALLBACK_SECRET": secrets["callback secret"],
            "PALETTE_ENCRYPTION_KEYS": secrets["encryption key"],
            "PALETTE_AUDIT_KEY": secrets["audit key"],
            "PALETTE_OIDC_ISSUER": idp.issuer,
            "PALETTE_OIDC_AUDIENCE": "palette-api",
            "PALETTE_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        }
    )
    admin = {"x-api-key": legacy}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        made = c.post("/v1/api-keys", json={"role": "member", "name": "ci"}, headers=admin).json()
        secrets["product api key"] = made["key"]
        member = {"authorization": f"Bearer {made['key']}"}
        token = idp.token(roles=["admin"], tenant="acme")
        secrets["oidc token"] = token
        endpoint = c.post(
            "/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hook"},
            headers={"authorization": f"Bearer {token}"},
        ).json()
        secrets["endpoint secret"] = endpoint["secret"]
        rotated = c.post(f"/v1/webhook-endpoints/{endpoint['id']}/secret/rotate", headers=admin)
        secrets["rotated endpoint secret"] = rotated.json()["secret"]
        secrets["tenant callback secret"] = c.get(
            "/v1/webhook-callback-secret", headers=admin
        ).json()["secret"]
        job = h.wait_job(
            c,
            h.submit(
                c, [("a.jpg", h.make_jpeg(1))], headers=member,
                callback_url="http://127.0.0.1:9/callback",
            ).headers["location"],
            headers=member,
        )
        link = c.post(f"/v1/jobs/{job['id']}/download-url", headers=member).json()["url"]
        secrets["download signature"] = parse_qs(urlsplit(link).query)["sig"][0]
        assert c.get(link).status_code == 200
        # Failures log too: a wrong key that looks right, an expired token.
        c.get("/v1/jobs", headers={"x-api-key": made["key"][:-1] + "x"})
        c.get("/v1/jobs", headers={"authorization": f"Bearer {idp.token(expires_in=-300)}"})
        assert c.delete(f"/v1/api-keys/{made['id']}", headers=admin).status_code == 204
        c.get("/v1/jobs", headers=member)  # revoked
    idp.close()
    server.stop()
    log = server.log()
    assert "settings in force" in log and "DEBUG" in log  # the sweep reads a real, full log
    for what, value in secrets.items():
        fragments = {value, value.split(":", 1)[-1], value.removeprefix("whsec_")}
        for fragment in fragments:
            assert fragment not in log, f"the {what} is in the server log"
