"""The URL signer: what is covered by the signature, expiry, key ids and key rotation."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from webhooktools import FnClock

from service.backends import open_backends
from service.settings import Settings
from service.signed_urls import (
    SignatureInvalid,
    SigningKeys,
    UrlExpired,
    UrlSigner,
    _mac,
    canonical,
    download_options,
    signing_keys,
)

NOW = 1_800_000_000.0
PATH = "/v1/downloads/jobs/job_a/results"


def signer(keys: str = "k1:0123456789abcdef0123", now: float = NOW) -> UrlSigner:
    return UrlSigner(SigningKeys.parse(keys), clock=FnClock(lambda: now))


def split(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


def signed(s: UrlSigner, expires: float = NOW + 900) -> tuple[str, list[tuple[str, str]]]:
    return split(s.sign(PATH, {"disposition": "attachment", "filename": "r.json"}, int(expires)))


def test_round_trip_and_head() -> None:
    s = signer()
    path, params = signed(s)
    values = s.verify("GET", path, params)
    assert values["disposition"] == "attachment" and values["kid"] == "k1"
    s.verify("HEAD", path, params)


def test_another_jobs_path_is_refused() -> None:
    s = signer()
    _, params = signed(s)
    with pytest.raises(SignatureInvalid):
        s.verify("GET", "/v1/downloads/jobs/job_b/results", params)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: [(k, "inline" if k == "disposition" else v) for k, v in p],
        lambda p: [(k, "evil.html" if k == "filename" else v) for k, v in p],
        lambda p: [(k, str(int(v) + 3600) if k == "expires" else v) for k, v in p],
        lambda p: [*p, ("extra", "1")],
        lambda p: [(k, v) for k, v in p if k != "filename"],
        lambda p: [
            (k, v[:-2] + ("AA" if not v.endswith("AA") else "BB") if k == "sig" else v)
            for k, v in p
        ],
        lambda p: [*p, ("disposition", "inline")],
        lambda p: [(k, v) for k, v in p if k != "sig"],
    ],
    ids=["disposition", "filename", "expiry", "added", "removed", "sig", "duplicate", "no-sig"],
)
def test_every_parameter_is_covered(tamper: object) -> None:
    s = signer()
    path, params = signed(s)
    with pytest.raises(SignatureInvalid):
        s.verify("GET", path, tamper(params))  # type: ignore[operator]


def test_method_is_covered() -> None:
    s = signer()
    path, params = signed(s)
    with pytest.raises(SignatureInvalid):
        s.verify("DELETE", path, params)


def test_expired_after_expiry_only() -> None:
    path, params = signed(signer(), expires=NOW + 10)
    signer(now=NOW + 9).verify("GET", path, params)
    with pytest.raises(UrlExpired):
        signer(now=NOW + 10).verify("GET", path, params)


def test_rotation_first_key_signs_all_verify() -> None:
    old = signer("k1:0123456789abcdef0123")
    path, params = signed(old)
    rotated = signer("k2:fedcba9876543210fedc,k1:0123456789abcdef0123")
    rotated.verify("GET", path, params)
    new_path, new_params = signed(rotated)
    assert dict(new_params)["kid"] == "k2"
    with pytest.raises(SignatureInvalid, match="key"):
        old.verify("GET", new_path, new_params)
    with pytest.raises(SignatureInvalid):  # a retired key no longer verifies
        signer("k2:fedcba9876543210fedc").verify("GET", path, params)


def test_an_unset_key_is_generated_once_for_every_node(tmp_path: Path) -> None:
    """Every node on the same backend gets the same generated key; a configured one wins."""
    settings = Settings(data_dir=tmp_path)
    nodes = [open_backends(settings), open_backends(settings)]
    first = signing_keys(settings, nodes[0].secrets)
    assert signing_keys(settings, nodes[1].secrets) == first
    [(kid, secret)] = first.keys
    assert re.fullmatch(r"k[0-9a-f]{8}", kid)  # a short id in every link
    assert len(base64.urlsafe_b64decode(secret + b"=")) == 32  # a 256-bit secret
    nodes[0].close()
    again = open_backends(settings)  # a restart keeps it
    assert signing_keys(settings, again.secrets) == first
    configured = Settings(data_dir=tmp_path, url_signing_keys="a:" + "x" * 20)
    assert signing_keys(configured, again.secrets).current == ("a", b"x" * 20)
    nodes[1].close()
    again.close()


def test_a_key_file_of_an_earlier_version_is_adopted(tmp_path: Path) -> None:
    """Links signed before the upgrade (key kept in the data dir) keep working."""
    (tmp_path / "url_signing_keys").write_text("kold:0123456789abcdef0123\n")
    backends = open_backends(Settings(data_dir=tmp_path))
    keys = signing_keys(Settings(data_dir=tmp_path), backends.secrets)
    assert keys.current == ("kold", b"0123456789abcdef0123")
    backends.close()


@pytest.mark.parametrize("text", ["nokey", "k1:short", "bad kid!:0123456789abcdef"])
def test_bad_key_settings(text: str) -> None:
    with pytest.raises(ValueError) as info:
        SigningKeys.parse(text)
    assert str(info.value) == (
        "PALETTE_URL_SIGNING_KEYS entries are 'kid:secret' (kid: letters, digits, '_.-', at most"
        " 32; secret: at least 16 characters)"
    )


@pytest.mark.parametrize("text", ["", " , "])
def test_key_settings_without_a_key(text: str) -> None:
    with pytest.raises(ValueError) as info:
        SigningKeys.parse(text)
    assert str(info.value) == "at least one URL signing key is needed"


def test_download_options() -> None:
    assert download_options({}, "j") == (
        900,
        {"disposition": "attachment", "filename": "j-results.json"},
    )
    assert download_options({"expires_in": 604800}, "j")[0] == 604800
    for bad in (
        {"expires_in": 604801},
        {"expires_in": 0},
        {"expires_in": "9"},
        {"disposition": "evil"},
        {"filename": "../../etc/passwd"},
        {"other": 1},
    ):
        with pytest.raises(ValueError):
            download_options(bad, "j")
    with pytest.raises(ValueError) as info:
        download_options({"disposition": "evil"}, "j")
    assert info.value.args == ("disposition", "disposition must be one of attachment, inline")
    with pytest.raises(ValueError) as info:
        download_options({"filename": "a/b"}, "j")
    assert info.value.args == (
        "filename",
        "filename must be 1-128 characters of letters, digits, space and _.,()+-",
    )


@pytest.mark.parametrize("field", ["kid", "sig"])
def test_non_ascii_values_are_refused_not_crashed(field: str) -> None:
    s = signer()
    path, params = signed(s)
    with pytest.raises(SignatureInvalid):
        s.verify("GET", path, [(k, "\u00e9\u00f1" if k == field else v) for k, v in params])


def signed_by_hand(expires: str) -> list[tuple[str, str]]:
    """Parameters with a valid signature over any ``expires`` text (the signer only writes ints)."""
    params = [("disposition", "attachment"), ("filename", "r.json"), ("expires", expires)]
    params.append(("kid", "k1"))
    return [*params, ("sig", _mac(b"0123456789abcdef0123", canonical("GET", PATH, params)))]


@pytest.mark.parametrize(
    "expires",
    ["\u00e9\u00f1", "\u0661\u0662\u0663", "+1900000000", " 1900000000", "1900000000.5"],
    ids=["letters", "arabic-digits", "plus", "space", "fraction"],
)
def test_a_signed_expiry_that_is_not_plain_digits_is_refused(expires: str) -> None:
    s = signer()
    assert s.verify("GET", PATH, signed_by_hand(str(int(NOW) + 900)))  # the MAC is right
    with pytest.raises(SignatureInvalid, match="expiry is not a number"):
        s.verify("GET", PATH, signed_by_hand(expires))


def test_key_settings_edges() -> None:
    keys = SigningKeys.parse("k1:" + "s" * 16 + ", ,k2:with:colons:0123456789")
    assert keys.current == ("k1", b"s" * 16)  # 16 characters is enough
    assert keys.get("k2") == b"with:colons:0123456789"  # past an empty entry; ':' in a secret
    assert keys.get("k3") is None
    with pytest.raises(ValueError):
        SigningKeys.parse("k1:" + "s" * 15)
    with pytest.raises(ValueError):
        SigningKeys(())
