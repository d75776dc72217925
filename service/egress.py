"""Outbound HTTP that cannot be pointed at the inside of the network (SSRF guard).

Every URL the service fetches or posts to goes through two checks:

1. ``vet_url`` when the URL is accepted (an endpoint is created, a job names a callback), so a bad
   URL is refused with a clear error before anything is stored;
2. ``PinnedTransport`` on every request: the host is resolved again, every address is vetted, and
   the TCP connection goes to the vetted address (the ``Host`` header and the TLS SNI / certificate
   check keep the original name). A DNS answer that changes between the two checks (rebinding)
   cannot smuggle a private address in, because the address connected to is the one just vetted.

Private, loopback, link-local, multicast, reserved and cloud metadata addresses are refused unless
an operator allowlist (``PALETTE_EGRESS_ALLOW_CIDRS``) contains them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Addresses that cloud providers use for instance metadata. Most are link-local or private and
# refused anyway; they are listed so the refusal names the reason.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)

ALLOWED_SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(Exception):
    """A URL or address the service will not connect to. ``code`` is stable for problem+json."""

    def __init__(self, detail: str, *, code: str = "url_not_allowed", url: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.url = url


def parse_cidrs(text: str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, ::1/128"`` -> networks. A bad entry raises ``ValueError`` naming it."""
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"PALETTE_EGRESS_ALLOW_CIDRS: {item!r} is not a CIDR ({exc})") from exc
    return tuple(networks)


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal_reason(address.ipv4_mapped)
        # 6to4 (2002::/16), Teredo (2001::/32) and NAT64 (64:ff9b::/96) addresses carry an
        # IPv4 address that a relay or gateway delivers to: judge that one.
        embedded = [address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            reason = refusal_reason(inner) if inner is not None else None
            if reason is not None:
                return f"{reason} (embedded in {address})"
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    for matched, reason in checks:
        if matched:
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations outbound requests may reach."""

    allow_cidrs: tuple[IPNetwork, ...] = ()
    allowed_schemes: tuple[str, ...] = ALLOWED_SCHEMES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EgressPolicy:
        env = os.environ if environ is None else environ
        return cls(allow_cidrs=parse_cidrs(env.get("PALETTE_EGRESS_ALLOW_CIDRS", "")))

    def allowlisted(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            a in net for a in candidates for net in self.allow_cidrs if a.version == net.version
        )

    def check_address(self, address: IPAddress, *, host: str = "") -> None:
        """Raise ``EgressRefused`` unless ``address`` is public or allowlisted."""
        if self.allowlisted(address):
            return
        reason = refusal_reason(address)
        if reason is not None:
            shown = f"{host} -> {address}" if host and host != str(address) else str(address)
            raise EgressRefused(
                f"destination {shown} is a {reason} address; outbound requests go only to public "
                "addresses unless PALETTE_EGRESS_ALLOW_CIDRS allows it",
                code="url_not_allowed",
            )

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and vet every address; any refused address refuses the host.

        Refusing on any bad answer (rather than picking a good one) keeps a name that mixes public
        and private records from reaching the private one on some other code path.
        """
        literal = _literal_ip(host)
        if literal is not None:
            self.check_address(literal, host=host)
            return [literal]
        if not _valid_hostname(host):  # before the resolver sees it (NUL, spaces, huge names)
            raise EgressRefused(f"{host!r} is not a valid host name", code="url_invalid")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise EgressRefused(
                f"host {host!r} does not resolve ({exc})", code="url_unresolvable"
            ) from exc
        addresses: list[IPAddress] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            self.check_address(address, host=host)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise EgressRefused(f"host {host!r} has no IP address", code="url_unresolvable")
        return addresses

    def vet_url(self, url: str) -> list[IPAddress]:
        """Check a URL's shape and every address its host resolves to (no connection is made)."""
        parts = _split(url, self.allowed_schemes)
        host = parts.hostname or ""
        return self.resolve(host, _port(parts.scheme, parts.port))


def _split(url: str, schemes: Sequence[str] = ALLOWED_SCHEMES) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise EgressRefused(f"{url!r} is not a valid URL ({exc})", code="url_invalid") from exc
    if parts.scheme not in schemes:
        raise EgressRefused(
            f"URL scheme must be one of {', '.join(schemes)}, not {parts.scheme!r}",
            code="url_invalid",
        )
    if not parts.hostname:
        raise EgressRefused("URL has no host", code="url_invalid")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("URL must not carry credentials (user:password@)", code="url_invalid")
    return parts


_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _valid_hostname(host: str) -> bool:
    name = _ascii_host(host).removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def _ascii_host(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def _port(scheme: str, port: int | None) -> int:
    if port is not None:
        return port
    return 443 if scheme == "https" else 80


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport that vets the destination on every request and connects to the vetted IP.

    The request URL's host is replaced by the vetted address for the TCP connection only: the
    ``Host`` header (set by httpx from the original URL) and the TLS server name
    (``sni_hostname``, also used for certificate verification) keep the original name.
    """

    def __init__(self, policy: EgressPolicy, inner: httpx.BaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpx.HTTPTransport(retries=0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in self.policy.allowed_schemes:
            raise EgressRefused(f"URL scheme {url.scheme!r} is not allowed", code="url_invalid")
        host = url.host
        address = self.policy.resolve(host, _port(url.scheme, url.port))[0]
        if _literal_ip(host) is None:  # a name: connect to the address just vetted
            request.url = url.copy_with(host=str(address))
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def pinned_client(
    policy: EgressPolicy, *, timeout: float, headers: Iterable[tuple[str, str]] = ()
) -> httpx.Client:
    """A client that never follows redirects and only reaches vetted addresses."""
    return httpx.Client(
        transport=PinnedTransport(policy),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        headers=list(headers),
        trust_env=False,  # a proxy from the environment would bypass the pinning
    )
