"""SPF (RFC 7208) with pyspf, its DNS answered by our resolver.

pyspf is synchronous and asks DNS itself; :class:`_Query` overrides its one
DNS method so every question goes through ``lookup`` (the bridge to the
async resolver), keeping pyspf's own limits (10 lookups, 2 void lookups,
CNAME chains). Runs on a worker thread.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import spf

from transferbot.inbound.senderauth.dns import DnsTemporaryError
from transferbot.inbound.senderauth.domains import address_domain, normalize_domain
from transferbot.inbound.senderauth.verdict import SpfVerdict

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], list[str]]
RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")


class _Query(spf.query):
    """pyspf's query with its DNS answered by ``lookup`` instead of its own resolver."""

    def __init__(self, *args: Any, lookup: Lookup, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lookup = lookup

    def dns(self, name: Any, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        name = str(name).rstrip(".").lower()
        if not name or any(not 0 < len(label) < 64 for label in name.split(".")):
            return []  # not a DNS name (as pyspf does)
        key = (name, qtype)
        if key in self.cache:
            return list(self.cache[key])
        try:
            texts = self._lookup(name, "TXT" if qtype == "SPF" else qtype)
        except DnsTemporaryError as exc:
            raise spf.TempError(f"DNS {exc}") from None
        result: list[Any]
        if qtype in ("TXT", "SPF"):
            result = [[text.encode("utf-8", "surrogateescape")] for text in texts]
        elif qtype == "MX":
            result = []
            for text in texts:
                preference, _, exchange = text.partition(" ")
                result.append((int(preference) if preference.isdigit() else 0, exchange.strip()))
        else:
            result = list(texts)
        self.cache[key] = result
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result


def check_spf(client_ip: str, mail_from: str, helo: str, lookup: Lookup, *, timeout: float = 20.0) -> SpfVerdict:
    """SPF for the envelope sender (or HELO when it has no domain) against the connecting address."""
    domain = address_domain(mail_from) or normalize_domain(helo) or ""
    try:
        ip = ipaddress.ip_address(client_ip.strip().strip("[]"))
    except ValueError:
        return SpfVerdict("permerror", domain, f"client address {client_ip!r} is not an IP address", client_ip=client_ip)
    if not domain:
        return SpfVerdict("none", "", "no domain in the envelope sender or HELO", client_ip=str(ip))
    sender = mail_from.strip().strip("<>") if address_domain(mail_from) else f"postmaster@{domain}"
    try:
        query = _Query(i=str(ip), s=sender, h=helo or domain, lookup=lookup, timeout=timeout)
        result, _code, explanation = query.check()
    except (spf.TempError, DnsTemporaryError) as exc:
        return SpfVerdict("temperror", domain, str(exc), client_ip=str(ip))
    except Exception as exc:  # noqa: BLE001 - pyspf on hostile input must not break the reader
        log.warning("SPF for %s from %s: pyspf failed: %r", domain, ip, exc)
        return SpfVerdict("permerror", domain, f"SPF check failed: {exc}", client_ip=str(ip))
    result = str(result).lower()
    if result not in RESULTS:
        result = "permerror"
    mechanism = getattr(query, "mechanism", None)
    if result == "none":
        detail = f"no SPF record at {domain}"
    elif result in ("pass", "fail", "softfail", "neutral") and mechanism:
        detail = f"matched {mechanism}"
    else:
        detail = str(explanation)
    return SpfVerdict(result, domain, detail, client_ip=str(ip))
