"""The audit log: what is recorded, ``GET /v1/audit``, and ``palette audit verify`` catching
every edit, deletion and swap of a row."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.audit.chain import GENESIS, mac, verify
from service.audit.interfaces import AuditEntry, StoredEntry

ALPHA = {"x-api-key": "alpha-admin-key-00000001"}
BETA = {"x-api-key": "beta-admin-key-000000001"}
KEYS = "alpha:alpha-admin-key-00000001,beta:beta-admin-key-000000001"


def audit_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - callers check the code
        [sys.executable, "-m", "service", "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A server that saw one of every audited act, stopped; its data dir and audit pages."""
    from servertools import ServiceProcess, write_guard

    root = tmp_path_factory.mktemp("audit")
    server = ServiceProcess(root / "data", write_guard(root / "guard"), {"PALETTE_API_KEYS": KEYS})
    server.start()
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(png, "PNG")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        viewer = c.post("/v1/api-keys", json={"role": "viewer"}, headers=ALPHA).json()
        job = c.post("/v1/jobs", files={"file": ("a.png", png.getvalue())}, headers=ALPHA).json()
        while c.get(f"/v1/jobs/{job['id']}", headers=ALPHA).json()["status"] != "succeeded":
            pass
        c.get(f"/v1/jobs/{job['id']}/results", headers=ALPHA)
        link = c.post(f"/v1/jobs/{job['id']}/download-url", headers=ALPHA).json()["url"]
        c.get(link)
        c.post(f"/v1/jobs/{job['id']}/cancel", headers=ALPHA)
        c.delete(f"/v1/jobs/{job['id']}", headers=ALPHA)
        c.get("/v1/jobs", headers={"x-api-key": "wrong"})
        c.get("/v1/api-keys", headers={"x-api-key": viewer["key"]})
        c.get("/v1/api-keys", headers=ALPHA)
        pages = {
            "alpha": c.get("/v1/audit", headers=ALPHA).json(),
            "beta": c.get("/v1/audit", headers=BETA).json(),
            "creates": c.get("/v1/audit?action=job.create", headers=ALPHA).json(),
            "first_two": c.get("/v1/audit?limit=2", headers=ALPHA).json(),
        }
        cursor = pages["first_two"]["next_cursor"]
        pages["next_two"] = c.get(f"/v1/audit?limit=2&cursor={cursor}", headers=ALPHA).json()
    server.stop()
    return {"data": server.data_dir, "pages": pages, "job": job["id"], "viewer": viewer["id"]}


@pytest.mark.e2e
def test_security_relevant_acts_are_recorded(audited: dict[str, Any]) -> None:
    entries = audited["pages"]["alpha"]["data"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "api_key.create",
        "job.create",
        "job.download",
        "job.download_url",
        "job.download",  # the signed link
        "job.cancel",
        "job.delete",
        "auth.denied",  # the viewer asking for the key list
        "admin.read",
    ]
    by_action = {e["action"]: e for e in entries}
    create = by_action["job.create"]
    assert create["target"] == audited["job"] and create["outcome"] == "allowed 202"
    assert create["tenant"] == "alpha" and create["actor"].startswith("legacy:")
    assert create["client"] == "127.0.0.1" and len(create["request_id"]) == 32
    assert by_action["api_key.create"]["target"] == audited["viewer"]
    assert by_action["job.cancel"]["outcome"] == "failed 409"  # it had finished
    denied = by_action["auth.denied"]
    assert denied["actor"] == f"api_key:{audited['viewer']}"
    assert denied["outcome"] == "denied 403 forbidden"
    assert next(e["actor"] for e in entries if e["action"] == "job.download") == "signed_url"
    # The other tenant sees none of it; a failed authentication belongs to no tenant.
    assert audited["pages"]["beta"]["data"] == []
    assert "auth.failure" not in actions


@pytest.mark.e2e
def test_the_audit_list_filters_and_pages(audited: dict[str, Any]) -> None:
    pages = audited["pages"]
    assert [e["action"] for e in pages["creates"]["data"]] == ["job.create"]
    everything = [e["seq"] for e in pages["alpha"]["data"]]
    assert everything == sorted(everything, reverse=True)
    paged = [e["seq"] for e in pages["first_two"]["data"] + pages["next_two"]["data"]]
    assert len(paged) == 4 and paged == sorted(paged, reverse=True)
    # The second page goes on where the first ended, within alpha's entries (the reads of
    # the log in between are entries too).
    assert paged[2] < paged[1] and paged[2:] == [s for s in everything if s < paged[1]][:2]


@pytest.mark.e2e
def test_verify_passes_on_the_untouched_log(audited: dict[str, Any]) -> None:
    result = audit_verify(audited["data"])
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"audit log intact: (\d+) entries", result.stdout)
    # alpha's 9 acts, a failed authentication, and the 5 reads of the log itself
    assert found is not None and int(found.group(1)) == 15


def tampered(audited: dict[str, Any], tmp_path: Path, sql: str) -> subprocess.CompletedProcess[str]:
    copy = tmp_path / "data"
    shutil.copytree(audited["data"], copy)
    with sqlite3.connect(copy / "jobs.sqlite3") as db:
        db.executescript(sql)
    return audit_verify(copy)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE audit_log SET target = 'someone-else' WHERE seq = 3", ["entry 3 was changed"]),
        ("UPDATE audit_log SET outcome = 'allowed 200' WHERE seq = 8", ["entry 8 was changed"]),
        ("DELETE FROM audit_log WHERE seq = 5", ["entry 5 removed"]),
        ("DELETE FROM audit_log WHERE seq IN (6, 7)", ["entries 6-7 removed"]),
        (
            # Swap the contents of rows 4 and 5 (positions kept).
            (
                "CREATE TEMP TABLE t AS SELECT * FROM audit_log WHERE seq IN (4, 5);"
                "UPDATE t SET seq = 9 - seq;"
                "DELETE FROM audit_log WHERE seq IN (4, 5);"
                "INSERT INTO audit_log SELECT * FROM t;"
            ),
            ["entry 5 was moved to position 4", "entry 4 was moved to position 5"],
        ),
    ],
    ids=["edit-target", "edit-outcome", "delete-one", "delete-two", "swap"],
)
def test_verify_names_every_changed_removed_or_reordered_entry(
    audited: dict[str, Any], tmp_path: Path, sql: str, named: list[str]
) -> None:
    result = tampered(audited, tmp_path, sql)
    assert result.returncode == 1
    for words in named:
        assert words in result.stdout, result.stdout
    assert len(result.stdout.strip().splitlines()) == len(named), result.stdout


def test_chain_verify_on_stored_entries() -> None:
    key = b"k" * 32
    rows: list[StoredEntry] = []
    prev = GENESIS
    for seq in range(1, 6):
        entry = AuditEntry(float(seq), "actor", "t", f"act{seq}", "x", "allowed 200", "r", "c")
        signed = mac(key, seq, entry, prev)
        rows.append(StoredEntry(seq, entry, prev, signed))
        prev = signed
    assert verify(key, rows) == []
    assert verify(b"another key" * 3, rows)[0] == "entry 1 was changed (its MAC does not match)"
    # Even with the key, a row linked to another predecessor breaks the chain on both sides.
    forged = StoredEntry(3, rows[2].entry, rows[0].mac, mac(key, 3, rows[2].entry, rows[0].mac))
    assert verify(key, [*rows[:2], forged, *rows[3:]]) == [
        "entry 3 does not follow the entry before it",
        "entry 4 does not follow the entry before it",
    ]
