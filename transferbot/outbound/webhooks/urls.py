"""Webhook endpoint URLs and the address guard that keeps deliveries off internal networks (SSRF).

An endpoint's URL is chosen by whoever registers it, so a delivery must not become a way to
reach the marketplace's own network: the cloud metadata service, a database's HTTP port, an
admin page on localhost. Two checks:

* ``validate_url``, when an endpoint is added and before each attempt: http(s), a plain host name
  or IP address, no credentials, and not a refused address written as an IP literal.
* ``AddressGuard.resolve``, at every new connection: the host name is resolved, and if *any* of its
  addresses is refused the delivery is refused. The connection is then made to one of exactly
  those checked addresses (transport.py), never to the name, so a second lookup that answers
  differently (DNS rebinding) cannot slip an internal address in between check and connect.

Loopback, private, link-local, unique-local and the other non-public unicast ranges are allowed
only with ``[webhooks] allow_private_networks = true`` (tests, a lab). Unspecified, multicast,
broadcast and reserved addresses are refused always: no webhook receiver lives there, and
0.0.0.0 would reach this machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence

import httpx

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves (host, port) to IP address strings. Tests inject one; the default uses loop.getaddrinfo."""

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are an IPv4 address
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible IPv6 (also holds :: and ::1)
_BROADCAST = ipaddress.ip_address("255.255.255.255")

ALWAYS_REFUSED = frozenset({"unspecified", "multicast", "broadcast", "reserved"})
"""Kinds refused even with allow_private_networks: nothing listens there that a webhook should reach."""

_ALLOW_HINT = "set [webhooks] allow_private_networks = true to allow it"


class UrlError(ValueError):
    """An endpoint URL we will not deliver to; the text is one line naming the problem."""


class AddressRefused(Exception):
    """A delivery refused because the endpoint's host is, or resolves to, a refused address.

    ``literal`` is true when the URL itself names the address (no lookup can ever change the
    answer); false when a host name resolved to it (a later lookup may answer differently).
    """

    def __init__(self, host: str, address: str, kind: str, literal: bool) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        self.literal = literal
        hint = "" if base_kind(kind) in ALWAYS_REFUSED else f"; {_ALLOW_HINT}"
        where = address if literal else f"{host} resolves to {address}"
        article = "an" if kind[0].lower() in "aeiou" else "a"
        super().__init__(f"{where}, {article} {kind} address: refused{hint}")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, where traffic to it may reach that IPv4 host."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address ("loopback", "private", ...), or None if it is.

    Explicit ranges rather than ``is_global`` alone: Python's tables differ between versions (3.11
    calls ::ffff:127.0.0.1 neither loopback nor private), and multicast counts as "global" there.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "link-local"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            form, v4 = embedded
            kind = address_kind(v4)
            return None if kind is None else f"{form} {kind}"
        if ip in _IPV4_COMPATIBLE and not (ip.is_loopback or ip.is_unspecified):
            return "reserved"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast:
        return "multicast"
    if ip == _BROADCAST:
        return "broadcast"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL:
        return "unique-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (CGNAT)"
    if isinstance(ip, ipaddress.IPv4Address) and any(ip in net for net in _RFC1918):
        return "private"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "special-purpose"
    return None


def show(ip: IPAddress) -> str:
    """An address as people write it: IPv4-mapped IPv6 with its dotted quad (::ffff:127.0.0.1)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def base_kind(kind: str) -> str:
    """The kind of the address itself, for an IPv6 form that stands for an IPv4 one ("IPv4-mapped loopback")."""
    return kind.split(" ", 1)[1] if kind.startswith(("IPv4-mapped ", "6to4 ", "NAT64 ")) else kind


def refusal(ip: IPAddress, allow_private_networks: bool) -> str | None:
    """The kind of address that makes ``ip`` refused under this policy, or None if it may be reached."""
    kind = address_kind(ip)
    if kind is None:
        return None
    if allow_private_networks and base_kind(kind) not in ALWAYS_REFUSED:
        return None
    return kind


def ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal (dotted quad or IPv6, as httpx gives it), else None.

    IPv6 zone ids (fe80::1%eth0) are not literals we accept: they name an interface of this machine.
    """
    if "%" in host:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _hostname_ok(host: str) -> bool:
    """An LDH host name (underscores tolerated); the last label not all digits, so '127.1' is no name."""
    name = host.removesuffix(".")
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def validate_url(url: str, *, allow_private_networks: bool = False) -> str:
    """Return ``url`` if it is a webhook URL we deliver to; else raise UrlError naming the problem.

    Parsed with httpx, the parser that will send the request, so the check and the use cannot
    disagree about which host is meant. Host names are checked here for form only; their
    addresses are checked when connecting (AddressGuard), at every attempt.
    """
    if not isinstance(url, str) or not url:
        raise UrlError("webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlError(f"webhook URL is too long ({len(url)} characters; at most {MAX_URL_LENGTH})")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UrlError("webhook URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlError(f"webhook URL is not a valid URL: {exc}") from None
    if parsed.scheme not in SCHEMES:
        shown = f" (not {parsed.scheme}:)" if parsed.scheme else ""
        raise UrlError(f"webhook URL must start with http:// or https://{shown}")
    if parsed.userinfo:
        raise UrlError("webhook URL must not contain a user name or password")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UrlError("webhook URL has no host")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UrlError(f"webhook URL port {parsed.port} is out of range")
    address = ip_literal(host)
    if address is None:
        if not _hostname_ok(host):
            raise UrlError(f"webhook URL host {parsed.host!r} is not a valid host name or IP address")
        return url
    kind = refusal(address, allow_private_networks)
    if kind is not None:
        raise UrlError(f"webhook URL: {AddressRefused(host, show(address), kind, literal=True)}")
    return url


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses for a TCP connection, from the system resolver, without blocking the loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class AddressGuard:
    """Resolves a host and refuses it unless every address it has may be reached under the policy."""

    def __init__(self, *, allow_private_networks: bool = False, resolver: Resolver | None = None) -> None:
        self.allow_private_networks = allow_private_networks
        self._resolver: Resolver = resolver or system_resolver

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses of ``host`` in resolver order; AddressRefused if any one is refused.

        Any, not all: a name with one public and one internal address could otherwise be steered
        to the internal one. Raises OSError (socket.gaierror) when the name does not resolve.
        """
        literal = ip_literal(host)
        if literal is not None:
            candidates: list[IPAddress] = [literal]
        else:
            candidates = []
            for text in await self._resolver(host, port):
                address = ipaddress.ip_address(text)
                if address not in candidates:
                    candidates.append(address)
            if not candidates:
                raise socket.gaierror(socket.EAI_NONAME, f"{host} has no addresses")
        for address in candidates:
            kind = refusal(address, self.allow_private_networks)
            if kind is not None:
                raise AddressRefused(host, show(address), kind, literal=literal is not None)
        return candidates
