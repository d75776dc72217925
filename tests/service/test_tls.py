"""HTTPS with ``palette serve --ssl-certfile --ssl-keyfile``: trustme certificates, TLS 1.2 at
least, HSTS on every answer."""

from __future__ import annotations

import socket
import ssl
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from servertools import ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_server(tmp_path: Path, guard_dir: Path) -> Any:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    server = ServiceProcess(
        tmp_path / "data",
        guard_dir,
        args=["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)],
        verify=ssl.create_default_context(cafile=str(cafile)),
    )
    server.start()
    yield server, ssl.create_default_context(cafile=str(cafile)), cafile
    server.stop()


def handshake(port: int, cafile: Path, highest: ssl.TLSVersion) -> str:
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions at all
    with warnings.catch_warnings():  # the point is to use a deprecated protocol version
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = highest
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def test_https_with_hsts(tls_server: Any) -> None:
    server, trusted, _ = tls_server
    assert server.url.startswith("https://")
    r = httpx.get(server.url + "/v1/jobs", verify=trusted, timeout=10)
    assert r.status_code == 200
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    problem = httpx.get(server.url + "/v1/jobs/nope", verify=trusted, timeout=10)
    assert problem.status_code == 404 and "strict-transport-security" in problem.headers
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
        httpx.get(server.url + "/healthz", timeout=10)


def test_tls_below_1_2_is_refused(tls_server: Any) -> None:
    server, _, cafile = tls_server
    assert handshake(server.port, cafile, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(server.port, cafile, ssl.TLSVersion.TLSv1_1)
