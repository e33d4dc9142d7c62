"""Nameserver entries as the operator writes them: ``addr``, ``addr:port``, ``v6`` or ``[v6]:port``.

Kept free of DNS libraries so the configuration can validate entries
without importing them. Pure.
"""

from __future__ import annotations

import ipaddress


class DnsConfigError(ValueError):
    """A nameserver entry that is not ``addr``, ``addr:port``, ``v6`` or ``[v6]:port``."""


def parse_nameserver(entry: str) -> tuple[str, int]:
    """``addr``, ``addr:port``, ``v6`` or ``[v6]:port`` as (address, port); the port defaults to 53."""
    text = entry.strip()
    if not text:
        raise DnsConfigError("empty nameserver entry")
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise DnsConfigError(f"{entry!r}: write an IPv6 address with a port as [addr]:port")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise DnsConfigError(f"{entry!r}: {host!r} is not an IPv6 address") from None
        if rest and not port_text:
            raise DnsConfigError(f"{entry!r}: no port after ':'")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text:
            raise DnsConfigError(f"{entry!r}: no port after ':'")
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise DnsConfigError(f"{entry!r}: not an IPv6 address (use [addr]:port for a port)") from None
    if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise DnsConfigError(f"{entry!r}: port must be 1-65535")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise DnsConfigError(f"{entry!r}: {host!r} is not an IP address (a resolver is named by its address, "
                             "as in resolv.conf)") from None
    return str(address), int(port_text) if port_text else 53
