"""The authorization matrix: every route of the app x every kind of credential, against a real
``palette serve`` with API keys (product and legacy) and a loopback OIDC provider.

The rows come from the app's own route list and the expectations from the policy table
(``service/auth/policy.py``), so a new route is in the matrix the day it is added, and a route
without a policy row fails ``test_every_route_has_a_policy_row``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servertools import LoopbackIdP, ServiceProcess
from starlette.routing import Route
from starlette.testclient import TestClient

from service.app import create_app
from service.auth import api_keys
from service.auth.policy import POLICY, rule_for
from service.auth.principal import PERMISSIONS
from service.settings import Settings

pytestmark = pytest.mark.e2e

TENANT = "tenant-a"
OTHER = "tenant-b"
LEGACY_KEY = "legacy-key-for-tenant-a-0001"


def _routes() -> list[tuple[str, str]]:
    app = create_app(Settings(data_dir=Path("unused")))
    return sorted(
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.endpoint.allowed_methods - {"HEAD"}  # type: ignore[attr-defined]
    )


ROUTES = _routes()


@dataclass(frozen=True)
class Credential:
    name: str
    tenant: str | None  # None: not a valid credential (401)
    role: str | None


CREDENTIALS = [
    Credential("none", None, None),
    Credential("bad_key", None, None),
    Credential("forged_key", None, None),
    Credential("expired_key", None, None),
    Credential("revoked_key", None, None),
    Credential("viewer", TENANT, "viewer"),
    Credential("member", TENANT, "member"),
    Credential("admin", TENANT, "admin"),
    Credential("legacy_admin", TENANT, "admin"),
    Credential("other_tenant_admin", OTHER, "admin"),
    Credential("oidc_viewer", TENANT, "viewer"),
    Credential("oidc_member", TENANT, "member"),
    Credential("oidc_admin", TENANT, "admin"),
    Credential("oidc_no_role", TENANT, None),
    Credential("oidc_wrong_aud", None, None),
    Credential("oidc_wrong_iss", None, None),
    Credential("oidc_expired", None, None),
    Credential("oidc_alg_none", None, None),
    Credential("oidc_unknown_signer", None, None),
]


def test_every_route_has_a_policy_row() -> None:
    """A route added without deciding who may call it fails here (and is denied meanwhile)."""
    assert len(ROUTES) > 30
    missing = [(p, m) for p, m in ROUTES if rule_for(p, m) is None]
    assert missing == []
    stale = sorted(set(POLICY) - set(ROUTES))
    assert stale == [], "policy rows for routes that do not exist"


def documented_need(path: str, method: str) -> str:
    """What a route needs, from the roles as service/README.md describes them, written out here
    apart from the policy table: ``admin`` for API keys, webhook endpoints and messages, the
    callback secret and the audit log; ``write`` to create, cancel and delete jobs, compute
    palettes (and analyses) and mint download links; ``read`` for the rest of ``/v1``."""
    admin_areas = ("/v1/api-keys", "/v1/webhook-endpoints", "/v1/webhook-messages",
                   "/v1/webhook-callback-secret", "/v1/audit")
    if path.startswith(admin_areas):
        return "admin"
    writes = {
        ("/v1/jobs", "POST"), ("/v1/jobs/{job_id}", "DELETE"), ("/v1/jobs/{job_id}/cancel", "POST"),
        ("/v1/palette", "POST"), ("/v1/analyze", "POST"), ("/v1/jobs/{job_id}/download-url", "POST"),
    }
    return "write" if (path, method) in writes else "read"


def test_the_policy_table_gives_each_role_what_the_readme_says() -> None:
    """The matrix takes its expectations from the policy table; this holds the table itself to
    the documented roles, so a row that lets a viewer read a secret is caught."""
    checked = [(p, m) for p, m in ROUTES if p.startswith("/v1/") and not p.startswith("/v1/downloads/")]
    assert len(checked) > 25
    wrong = {
        (p, m): (getattr(rule, "need", None), documented_need(p, m))
        for p, m in checked
        if (rule := rule_for(p, m)) is None or rule.need != documented_need(p, m)
    }
    assert wrong == {}, "route: (policy, documented)"


def test_a_route_without_a_policy_row_is_denied_to_everyone(tmp_path: Path, h: Any) -> None:
    from starlette.responses import PlainTextResponse

    from service.routes import api_route

    async def secret(request: Any) -> Any:
        return PlainTextResponse("should not be reached")

    app = create_app(Settings(data_dir=tmp_path), routes=[api_route("/v1/unlisted", GET=secret)])
    with TestClient(app) as c:  # open mode: the caller is the admin of tenant public
        body = h.problem(c.get("/v1/unlisted"), 403, "not_permitted")
        assert "not open to any role" in body["detail"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with every kind of credential, and objects of tenant A behind every route."""
    from servertools import write_guard

    root = tmp_path_factory.mktemp("authz")
    guard = write_guard(root / "guard")
    data = root / "data"
    idp = LoopbackIdP()
    env = {
        "PALETTE_API_KEYS": f"{TENANT}:{LEGACY_KEY}",
        "PALETTE_OIDC_ISSUER": idp.issuer,
        "PALETTE_OIDC_AUDIENCE": "palette-api",
        "PALETTE_RATE_LIMITS": "100000/second",
        "PALETTE_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        "PALETTE_WEBHOOK_TIMEOUT": "0.5",
    }

    def bootstrap(tenant: str) -> str:
        out = subprocess.run(  # noqa: PLW1510 - checked below
            [sys.executable, "-m", "service", "keys", "create", "--data-dir", str(data),
             "--tenant", tenant, "--role", "admin"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    admin, other_admin = bootstrap(TENANT), bootstrap(OTHER)
    server = ServiceProcess(data, guard, env).start()
    c = httpx.Client(base_url=server.url, timeout=30)
    as_admin = {"x-api-key": admin}

    def key(role: str, **extra: Any) -> dict[str, Any]:
        r = c.post("/v1/api-keys", json={"role": role, **extra}, headers=as_admin)
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        return made

    expired = key("admin", expires_in=1)
    revoked = key("admin")
    assert c.delete(f"/v1/api-keys/{revoked['id']}", headers=as_admin).status_code == 204
    time.sleep(1.1)
    keys = {
        "viewer": key("viewer")["key"],
        "member": key("member")["key"],
        "admin": admin,
        "legacy_admin": LEGACY_KEY,
        "other_tenant_admin": other_admin,
        "expired_key": expired["key"],
        "revoked_key": revoked["key"],
        "bad_key": "not-a-key-at-all",
        "forged_key": api_keys.mint()[1],
    }
    stranger = LoopbackIdP()  # signs with keys our IdP never published
    tokens = {
        "oidc_viewer": idp.token(roles=["viewer"]),
        "oidc_member": idp.token(roles=["member"]),
        "oidc_admin": idp.token(roles=["admin", "viewer"]),
        "oidc_no_role": idp.token(roles=["auditor"]),
        "oidc_wrong_aud": idp.token(roles=["admin"], audience="someone-else"),
        "oidc_wrong_iss": idp.token(roles=["admin"], issuer="https://idp.example"),
        "oidc_expired": idp.token(roles=["admin"], expires_in=-120),
        "oidc_alg_none": idp.unsigned_token(),
        "oidc_unknown_signer": stranger.token(roles=["admin"], kid=idp.keys[0][0]),
    }
    stranger.close()
    headers: dict[str, dict[str, str]] = {"none": {}}
    headers.update({name: {"x-api-key": k} for name, k in keys.items()})
    headers.update({name: {"authorization": f"Bearer {t}"} for name, t in tokens.items()})

    png = _png()

    def new_job() -> str:
        r = c.post("/v1/jobs", files={"file": ("a.png", png)}, headers=as_admin)
        assert r.status_code == 202, r.text
        job_id: str = r.json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"/v1/jobs/{job_id}", headers=as_admin).json()["status"] not in (
            "succeeded", "failed"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return job_id

    palette = c.post("/v1/palette", content=png, headers=as_admin)
    assert palette.status_code == 200, palette.text
    endpoint = c.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=as_admin
    )
    assert endpoint.status_code == 201, endpoint.text
    endpoint_id = endpoint.json()["id"]
    message = c.post(f"/v1/webhook-endpoints/{endpoint_id}/test", headers=as_admin)
    assert message.status_code == 202, message.text
    objects = {
        "job_id": new_job(),
        "digest": palette.headers["content-location"].split("/")[-1].split("?")[0],
        "endpoint_id": endpoint_id,
        "message_id": message.json()["id"],
        "key_id": keys["viewer"].split("_")[2],
    }
    yield {
        "client": c,
        "headers": headers,
        "objects": objects,
        "new_job": new_job,
        "new_key_id": lambda: key("viewer")["id"],
        "server": server,
    }
    c.close()
    server.stop()
    idp.close()


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


def expected(path: str, method: str, cred: Credential) -> str:
    """``"<status>"`` exactly, or ``"through"``: past the gate (not 401/403/404/429, no 5xx)."""
    rule = rule_for(path, method)
    if rule is None:
        return "403"
    if rule.need == "public":
        return "200"
    if rule.need == "signed":
        return "403"  # no signature in the URL: signature_invalid, whatever else is sent
    if cred.tenant is None:
        return "401"
    if cred.role is None or rule.need not in PERMISSIONS[cred.role]:
        return "403"
    if cred.tenant != TENANT and "{" in path:
        return "404"  # tenant A's object, asked for by tenant B
    return "through"


# Valid bodies where a route checks its body before it looks the object up, so another
# tenant's request reaches the lookup (and its 404).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/webhook-endpoints/{endpoint_id}", "PATCH"): {"description": "renamed"},
    ("/v1/webhook-endpoints/{endpoint_id}/recover", "POST"): {"since": 0},
}


@pytest.mark.parametrize("cred", CREDENTIALS, ids=lambda c: c.name)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[1]} {r[0]}")
def test_matrix(world: dict[str, Any], route: tuple[str, str], cred: Credential) -> None:
    path, method = route
    want = expected(path, method, cred)
    objects = dict(world["objects"])
    if want == "through" and (path, method) == ("/v1/jobs/{job_id}", "DELETE"):
        objects["job_id"] = world["new_job"]()  # this one is really deleted
    if want == "through" and (path, method) == ("/v1/api-keys/{key_id}", "DELETE"):
        objects["key_id"] = world["new_key_id"]()
    url = path.format(**objects)
    headers = dict(world["headers"][cred.name])
    if method in ("PATCH", "DELETE") and "webhook-endpoints" in path:
        headers["if-match"] = '"not-the-current-etag"'  # 412: past the gate, nothing changed
    body = BODIES.get((path, method))
    r = world["client"].request(method, url, headers=headers, json=body) if body else (
        world["client"].request(method, url, headers=headers, content=b"")
    )
    assert r.status_code < 500, r.text
    if want == "through":
        assert r.status_code not in (401, 403, 404, 429), r.text
        return
    assert r.status_code == int(want), r.text
    if want in ("401", "403", "404"):
        assert r.headers["content-type"] == "application/problem+json"
    if want == "401":
        assert r.headers["www-authenticate"].startswith("Bearer")
