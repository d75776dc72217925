"""The SSRF guard: refusal happens at validation / resolution, before any connection."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import pytest

from service.egress import EgressPolicy, EgressRefused, PinnedTransport, parse_cidrs, refusal_reason
from service.settings import Settings

Resolver = Callable[..., list[Any]]


# A resolver answer in a family other than IPv4 / IPv6: (family, sockaddr).
OtherFamily = tuple[int, Any]


def fake_resolver(table: Mapping[str, Sequence[str | OtherFamily]], real: Resolver) -> Resolver:
    """``socket.getaddrinfo`` that answers for the names in ``table`` the way the system resolver
    answers for an address it found, and passes IP literals through.

    The arguments (port, family, socket type, protocol, flags) go to the real ``getaddrinfo`` for a
    numeric address first: a call it would refuse is refused, and every name gets one entry per
    socket type that call answers with (all three when no type is asked for). A scoped IPv6
    answer (``fe80::1%eth0``) keeps its zone in the address text, as the real one reports it.
    """

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        if host not in table:
            ipaddress.ip_address(host)  # anything else must be a literal: never ask real DNS
            return real(host, port, family, type, proto, flags)
        kinds = list(
            dict.fromkeys(
                (kind, protocol)
                for _, kind, protocol, _, _ in real(
                    "127.0.0.1", port, socket.AF_INET, type, proto, flags | socket.AI_NUMERICHOST
                )
            )
        )
        out: list[Any] = []
        for answer in table[host]:
            if isinstance(answer, tuple):
                entries = [answer]
            elif ":" in answer:
                scope_id = 2 if "%" in answer else 0  # the interface's index
                entries = [(socket.AF_INET6, (answer, int(port or 0), 0, scope_id))]
            else:
                entries = [(socket.AF_INET, (answer, int(port or 0)))]
            for fam, sockaddr in entries:
                if family in (0, fam):
                    out.extend((fam, kind, protocol, "", sockaddr) for kind, protocol in kinds)
        return out

    return getaddrinfo


def recording(resolver: Resolver, asked: list[str]) -> Resolver:
    """``resolver``, noting in ``asked`` every host it is asked for."""

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        return resolver(host, *args, **kwargs)

    return getaddrinfo


def no_answers(*args: Any, **kwargs: Any) -> list[Any]:
    return []


@pytest.fixture
def connect_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every address any socket in this process tries to connect to (on top of the guard)."""
    calls: list[object] = []
    guarded = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> None:
        calls.append(address)
        guarded(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return calls


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("10.0.0.1", "private"),
        ("192.168.1.10", "private"),
        ("172.16.5.4", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "private"),
        ("100.64.0.1", "not globally routable"),
        ("fc00::1", "private"),
        ("4000::1", "reserved"),  # IETF-reserved, and neither private nor special otherwise
    ],
    ids=lambda v: str(v),
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("2001:0:808:808::f5ff:fffe", "10.0.0.1"),  # Teredo: server 8.8.8.8, client 10.0.0.1
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64
    ],
)
def test_tunnel_addresses_are_judged_by_the_ipv4_they_deliver_to(address: str, inner: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and reason.endswith(f"(embedded in {address})")
    assert reason.removesuffix(f" (embedded in {address})") == refusal_reason(
        ipaddress.ip_address(inner)
    )


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "https://[::1]:8443/x",
        "http://127.0.0.1:9/x",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_literal_private_urls_are_refused_without_connecting(
    url: str, connect_calls: list[object]
) -> None:
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url(url)
    assert info.value.code == "url_not_allowed"
    assert connect_calls == []


def test_name_resolving_to_loopback_is_refused_unless_allowlisted(
    monkeypatch: pytest.MonkeyPatch, connect_calls: list[object]
) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", fake_resolver({"sneaky.example": ["127.0.0.1"]}, socket.getaddrinfo)
    )
    with pytest.raises(EgressRefused, match="sneaky.example -> 127.0.0.1 is a loopback"):
        EgressPolicy().vet_url("https://sneaky.example/hook")
    allowed = EgressPolicy(allow_cidrs=parse_cidrs("127.0.0.0/8"))
    assert allowed.vet_url("https://sneaky.example/hook") == [ipaddress.ip_address("127.0.0.1")]
    assert connect_calls == []


def test_allowlist_opens_only_what_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = EgressPolicy(allow_cidrs=parse_cidrs("10.1.0.0/16, 169.254.169.254/32"))
    policy.vet_url("http://10.1.2.3/x")
    policy.vet_url("http://169.254.169.254/x")
    with pytest.raises(EgressRefused):
        policy.vet_url("http://10.2.0.1/x")


def test_one_private_answer_refuses_the_whole_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        fake_resolver({"mixed.example": ["93.184.216.34", "10.0.0.1"]}, socket.getaddrinfo),
    )
    with pytest.raises(EgressRefused, match="10.0.0.1"):
        EgressPolicy().vet_url("http://mixed.example/")


def refusal_of(address: str, reason: str, host: str = "hooks.example") -> str:
    """The start of the detail a refused destination is told (``address`` as vetted)."""
    return f"destination {host} -> {ipaddress.ip_address(address)} is a {reason} address;"


@pytest.mark.parametrize(
    ("answers", "address", "reason"),
    [
        (["2606:4700:4700::1111", "10.0.0.1"], "10.0.0.1", "private"),  # AAAA fine, A private
        (["10.0.0.1", "93.184.216.34"], "10.0.0.1", "private"),  # the bad one first
        (["93.184.216.34", "::ffff:10.0.0.1"], "::ffff:10.0.0.1", "private"),  # IPv4-mapped
        (["93.184.216.34", "169.254.169.254"], "169.254.169.254", "cloud metadata"),
        (["2002:a00:1::1"], "2002:a00:1::1", "private (embedded in 2002:a00:1::1)"),  # 6to4
        (["fe80::1%eth0"], "fe80::1", "link-local"),  # the zone is not part of the address
        (["fe80::1%eth0", "93.184.216.34"], "fe80::1", "link-local"),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, list) else str(v),
)
def test_a_name_with_any_refused_answer_is_refused(
    answers: list[str],
    address: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    connect_calls: list[object],
) -> None:
    table = {"hooks.example": answers}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, socket.getaddrinfo))
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url("https://hooks.example/hook")
    assert info.value.code == "url_not_allowed"
    assert str(info.value).startswith(refusal_of(address, reason))
    with (
        httpx.Client(transport=PinnedTransport(EgressPolicy())) as client,
        pytest.raises(EgressRefused) as again,
    ):
        client.post("https://hooks.example/hook", content=b"{}")
    assert str(again.value) == str(info.value)
    assert connect_calls == []


@pytest.mark.parametrize(
    ("host", "answer", "reason"),
    [
        ("2130706433", "127.0.0.1", "loopback"),  # a decimal number, read by inet_aton
        ("0177.0.0.1", "127.0.0.1", "loopback"),  # octal: not an address to ipaddress
        ("0x7f.1", "127.0.0.1", "loopback"),
        ("10.1", "10.0.0.1", "private"),
    ],
)
def test_numbers_that_are_not_addresses_are_judged_by_what_they_resolve_to(
    host: str, answer: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system resolver reads these as addresses; the guard asks it and vets its answer."""
    asked: list[str] = []
    resolver = fake_resolver({host: [answer]}, socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", recording(resolver, asked))
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url(f"http://{host}/hook")
    assert info.value.code == "url_not_allowed" and asked == [host]
    assert str(info.value).startswith(refusal_of(answer, reason, host=host))


@pytest.mark.parametrize(
    ("answers", "allow", "vetted"),
    [
        (["93.184.216.34", "2606:4700:4700::1111"], "", ["93.184.216.34", "2606:4700:4700::1111"]),
        (["2606:4700:4700::1111", "93.184.216.34"], "", ["2606:4700:4700::1111", "93.184.216.34"]),
        (
            ["93.184.216.35", "93.184.216.34", "93.184.216.35"],
            "",
            ["93.184.216.35", "93.184.216.34"],
        ),
        (["fe80::1%eth0"], "fe80::/10", ["fe80::1"]),
        (
            ["fe80::1%eth0", "fe80::1%eth1", "10.0.0.1"],
            "fe80::/10,10.0.0.0/8",
            ["fe80::1", "10.0.0.1"],
        ),
        # an answer in another family (as an NSS module may give) is skipped, not the end
        ([(socket.AF_UNIX, "/run/hooks.sock"), "93.184.216.34"], "", ["93.184.216.34"]),
    ],
    ids=["a-then-aaaa", "aaaa-then-a", "duplicates", "zone", "zones", "not-ip-first"],
)
def test_the_vetted_addresses_of_a_name_and_the_one_connected_to(
    answers: list[str | OtherFamily],
    allow: str,
    vetted: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every IP answer once, in the resolver's order, without its zone; the connection goes to
    the first. An answer that is not an IP address is skipped."""
    table = {"hooks.example": answers}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, socket.getaddrinfo))
    policy = EgressPolicy(allow_cidrs=parse_cidrs(allow))
    expected = [ipaddress.ip_address(a) for a in vetted]
    got = policy.vet_url("https://hooks.example/hook")
    assert got == expected and [str(a) for a in got] == vetted
    inner = Recording()
    PinnedTransport(policy, inner).handle_request(
        httpx.Request("POST", "https://hooks.example/hook")
    )
    [sent] = inner.sent
    assert sent.url.host == vetted[0] and sent.headers["host"] == "hooks.example"


@pytest.mark.parametrize(
    "answers",
    [[], [(socket.AF_UNIX, "/run/hooks.sock")], [(socket.AF_UNIX, "/a"), (socket.AF_UNIX, "/b")]],
    ids=["none", "unix", "two-unix"],
)
def test_a_name_without_an_ip_answer_is_unresolvable(
    answers: list[str | OtherFamily], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = {"hooks.example": answers}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, socket.getaddrinfo))
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url("http://hooks.example/hook")
    assert (info.value.code, str(info.value)) == (
        "url_unresolvable",
        "host 'hooks.example' has no IP address",
    )


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://127.0.0.1/", "destination 127.0.0.1 is a loopback address;"),
        ("https://[::1]:8443/", "destination ::1 is a loopback address;"),
        # written otherwise than the address's own form: both are shown
        ("http://[0:0:0:0:0:0:0:1]/", "destination 0:0:0:0:0:0:0:1 -> ::1 is a loopback"),
        ("http://[fe80::1%25eth0]/", "destination fe80::1%25eth0 -> fe80::1 is a link-local"),
        ("http://[FE80::A%25eth0]:81/", "destination fe80::a%25eth0 -> fe80::a is a link-local"),
        # what follows the first % is a zone, whatever it holds: the address before it is vetted
        ("http://10.0.0.1%25eth0/", "destination 10.0.0.1%25eth0 -> 10.0.0.1 is a private"),
        ("http://10.0.0.1%25a%25b/", "destination 10.0.0.1%25a%25b -> 10.0.0.1 is a private"),
    ],
)
def test_a_literal_address_is_vetted_without_asking_the_resolver(
    url: str, detail: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", recording(no_answers, asked))
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url(url)
    assert info.value.code == "url_not_allowed" and asked == []
    assert str(info.value).startswith(detail)


def test_an_allowlisted_scoped_literal_is_vetted_without_its_zone() -> None:
    policy = EgressPolicy(allow_cidrs=parse_cidrs("fe80::/10"))
    [address] = policy.vet_url("http://[fe80::1%25eth0]/hook")
    assert address == ipaddress.ip_address("fe80::1") and str(address) == "fe80::1"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://:pw@example.com/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com:-1/", "not a valid URL"),
        ("http://example.com:http/", "not a valid URL"),
        ("file:///etc/passwd", "scheme"),
    ],
)
def test_malformed_urls(url: str, fragment: str) -> None:
    with pytest.raises(EgressRefused, match=fragment) as info:
        EgressPolicy().vet_url(url)
    assert info.value.code == "url_invalid"


@pytest.mark.parametrize(
    "failure",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        UnicodeError("label empty or too long"),
    ],
    ids=["gaierror", "unicode"],
)
def test_unresolvable_host(failure: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> list[Any]:
        raise failure

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url("http://nowhere.example/")
    assert info.value.code == "url_unresolvable"
    assert str(info.value) == f"host 'nowhere.example' does not resolve ({failure})"
    assert info.value.__cause__ is failure


def test_bad_allowlist_entry_is_named() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_cidrs("127.0.0.0/8,10.0.0.0/33")


def test_transport_revets_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, connect_calls: list[object]
) -> None:
    """DNS rebinding: the name was public when vetted, then points inside; nothing connects."""
    answers = {"rebind.example": ["93.184.216.34"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, socket.getaddrinfo))
    policy = EgressPolicy()
    policy.vet_url("http://rebind.example/hook")  # creation time: fine
    answers["rebind.example"] = ["169.254.169.254"]
    with (
        httpx.Client(transport=PinnedTransport(policy)) as client,
        pytest.raises(EgressRefused, match="cloud metadata"),
    ):
        client.post("http://rebind.example/hook", content=b"{}")
    assert connect_calls == []


def test_transport_connects_to_the_vetted_address_keeping_the_host(
    monkeypatch: pytest.MonkeyPatch, receiver: Any, connect_calls: list[object]
) -> None:
    port = int(receiver.url.split(":")[2].split("/")[0])
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        fake_resolver({"hooks.example": ["127.0.0.1"]}, socket.getaddrinfo),
    )
    policy = EgressPolicy(allow_cidrs=parse_cidrs("127.0.0.0/8"))
    with httpx.Client(transport=PinnedTransport(policy)) as client:
        response = client.post(f"http://hooks.example:{port}/hook", content=b"{}")
    assert response.status_code == 200
    [got] = receiver.wait_for(1, timeout=5)
    assert got.headers["host"] == f"hooks.example:{port}"
    assert [a[0] for a in connect_calls] == ["127.0.0.1"]  # type: ignore[index]


def test_the_guard_itself_blocks_non_loopback(network_guard: Any) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("10.0.0.1", 80), timeout=0.01)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("192.0.2.1", 80))
    assert len(network_guard.violations) == 2
    network_guard.violations.clear()  # expected here; any other test with violations fails


@pytest.mark.parametrize(
    "url",
    [
        "http://a\x00b/",
        "http://exa mple.com/",
        "http://-bad.example/",
        "http://%00/",
        "http://" + "a" * 64 + ".example/",
        "http://" + "a" * 5000 + "!/",
        "http://93.184.216.34 evil.example/",  # an address, then more: not an address
        "http://93.184.216.34 /",
        "http:// 10.0.0.1/",
    ],
    ids=[
        "nul",
        "space",
        "dash",
        "percent",
        "long-label",
        "huge",
        "ip-then-name",
        "ip-space",
        "space-ip",
    ],
)
def test_bad_host_names_never_reach_the_resolver(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", recording(no_answers, asked))
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url(url)
    assert info.value.code == "url_invalid" and asked == []


def test_host_names_the_resolver_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-letter name and a fully qualified name (trailing dot) are valid and go to the
    resolver; a leading dot is not a name at all."""
    table = {"a": ["93.184.216.34"], "hooks.example.": ["93.184.216.35"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, socket.getaddrinfo))
    policy = EgressPolicy()
    assert policy.vet_url("http://a/hook") == [ipaddress.ip_address("93.184.216.34")]
    assert policy.vet_url("https://hooks.example./x") == [ipaddress.ip_address("93.184.216.35")]
    with pytest.raises(EgressRefused) as info:
        policy.vet_url("https://.hooks.example/x")
    assert info.value.code == "url_invalid"
    assert str(info.value) == "'.hooks.example' is not a valid host name"


def test_what_a_refused_url_is_told() -> None:
    policy = EgressPolicy()
    for url, detail in (
        ("ftp://example.com/x", "URL scheme must be one of http, https, not 'ftp'"),
        ("http:///nohost", "URL has no host"),
        ("http://user:pw@example.com/", "URL must not carry credentials (user:password@)"),
    ):
        with pytest.raises(EgressRefused) as info:
            policy.vet_url(url)
        assert (info.value.code, str(info.value)) == ("url_invalid", detail)
    with pytest.raises(EgressRefused) as info:
        EgressPolicy(allowed_schemes=("https",)).vet_url("http://93.184.216.34/")
    assert str(info.value) == "URL scheme must be one of https, not 'http'"


def test_a_host_name_may_be_253_characters_long(monkeypatch: pytest.MonkeyPatch) -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    table = {longest: ["93.184.216.34"], longest + ".": ["93.184.216.34"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, socket.getaddrinfo))
    assert EgressPolicy().vet_url(f"http://{longest}/") == [ipaddress.ip_address("93.184.216.34")]
    assert EgressPolicy().vet_url(f"http://{longest}./")  # the root's dot is not counted
    too_long = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])  # every label within 63
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().vet_url(f"http://{too_long}/")
    assert info.value.code == "url_invalid"


def test_the_allowlist_comes_from_the_environment_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PALETTE_EGRESS_ALLOW_CIDRS", "192.168.0.0/16")  # not the one given
    settings = Settings.from_env({"PALETTE_EGRESS_ALLOW_CIDRS": " 10.1.2.3/8, ,127.0.0.1/32 "})
    # a host address with a prefix names its network; an empty entry is skipped, not the end
    assert settings.webhooks.egress.allow_cidrs == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    settings.webhooks.egress.check_address(ipaddress.ip_address("10.200.0.1"))  # allowed


def test_the_transport_refuses_a_scheme_the_policy_does_not_allow() -> None:
    transport = PinnedTransport(EgressPolicy(allowed_schemes=("https",)))
    with pytest.raises(EgressRefused) as info:
        transport.handle_request(httpx.Request("POST", "http://93.184.216.34/hook"))
    assert (info.value.code, str(info.value)) == ("url_invalid", "URL scheme 'http' is not allowed")


class Recording(httpx.BaseTransport):
    """The transport under the pinned one: records what would have gone on the wire."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(204)


@pytest.mark.parametrize(("scheme", "sni"), [("https", "hooks.example"), ("http", None)])
def test_tls_to_the_pinned_address_still_names_the_host(
    monkeypatch: pytest.MonkeyPatch, scheme: str, sni: str | None
) -> None:
    table = {"hooks.example": ["93.184.216.34"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table, socket.getaddrinfo))
    inner = Recording()
    PinnedTransport(EgressPolicy(), inner).handle_request(
        httpx.Request("POST", f"{scheme}://hooks.example/x")
    )
    [sent] = inner.sent
    assert sent.url.host == "93.184.216.34" and sent.headers["host"] == "hooks.example"
    assert sent.extensions.get("sni_hostname") == sni  # the certificate is checked for the name


def test_an_allowlisted_network_covers_its_ipv4_mapped_addresses() -> None:
    policy = EgressPolicy(allow_cidrs=parse_cidrs("127.0.0.0/8"))
    policy.check_address(ipaddress.ip_address("::ffff:127.0.0.1"))  # allowed: no refusal
    with pytest.raises(EgressRefused) as info:
        EgressPolicy().check_address(ipaddress.ip_address("10.0.0.1"))
    assert str(info.value).startswith("destination 10.0.0.1 is a private address;")
