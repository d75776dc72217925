"""A revoked API key is refused at once by the node that revoked it, even right after the key
was used there (checked keys are remembered for a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.cli import main
from service.settings import Settings


def test_a_key_used_a_moment_ago_is_refused_right_after_its_revocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["keys", "create", "--data-dir", str(data), "--tenant", "t", "--role", "admin"]) == 0
    admin = {"x-api-key": capsys.readouterr().out.strip()}
    with TestClient(create_app(Settings(data_dir=data, sweep_interval_seconds=3600))) as c:
        made = c.post("/v1/api-keys", json={"role": "member", "name": "ci"}, headers=admin)
        assert made.status_code == 201, made.text
        member = {"x-api-key": made.json()["key"]}
        for _ in range(2):  # the second use is answered from what the node remembers
            assert c.get("/v1/jobs", headers=member).status_code == 200
        assert c.delete(f"/v1/api-keys/{made.json()['id']}", headers=admin).status_code == 204
        refused = c.get("/v1/jobs", headers=member)
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert c.get("/v1/jobs", headers=admin).status_code == 200
