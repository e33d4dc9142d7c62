"""Domains: their comparable form, the organisational domain, and DMARC identifier alignment.

The organisational domain comes from the Public Suffix List shipped inside
the ``publicsuffixlist`` package (no network): ``mail.acme.co.uk`` belongs
to ``acme.co.uk``; ``co.uk`` belongs to nobody, so it never aligns, not
even with itself. Pure functions.
"""

from __future__ import annotations

import functools
from email.message import Message
from email.utils import getaddresses
from typing import Literal

from publicsuffixlist import PublicSuffixList

Mode = Literal["r", "s"]


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def normalize_domain(domain: str | None) -> str | None:
    """Lower case, no final dot, IDNA A-labels; None when it cannot be a domain."""
    if not domain:
        return None
    text = domain.strip().strip("[]").rstrip(".").lower()
    if not text or len(text) > 253 or any(c.isspace() or c in '@()<>,;:\\"' for c in text):
        return None
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = text.split(".")
    if any(not label or len(label) > 63 for label in labels):
        return None
    return text


def organizational_domain(domain: str) -> str | None:
    """The registered domain ``domain`` belongs to, or None for a public suffix (or nonsense)."""
    norm = normalize_domain(domain)
    if norm is None:
        return None
    org = _psl().privatesuffix(norm)
    return str(org) if org else None


def aligned(identifier: str | None, from_domain: str | None, mode: Mode = "r") -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): strict is the same domain, relaxed the same organisational one."""
    ident, frm = normalize_domain(identifier), normalize_domain(from_domain)
    if ident is None or frm is None:
        return False
    org = organizational_domain(frm)
    if org is None:  # a public suffix is nobody's domain
        return False
    if mode == "s":
        return ident == frm
    return organizational_domain(ident) == org


def address_domain(address: str | None) -> str | None:
    """The domain of ``local@domain`` (angle brackets allowed), or None."""
    if not address:
        return None
    text = address.strip().strip("<>")
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return None
    return normalize_domain(domain)


def from_domain(message: Message) -> str | None:
    """The domain of the RFC5322.From address, or None unless there is exactly one From with one address.

    DMARC authenticates one From domain; a message with none, several From
    fields or several addresses cannot be tied to one (RFC 7489 6.6.1).
    """
    values = message.get_all("From") or []
    if len(values) != 1:
        return None
    try:
        pairs = getaddresses([str(values[0])[:2000]], strict=True)
    except TypeError:  # Python builds without the strict parameter
        pairs = getaddresses([str(values[0])[:2000]])
    except Exception:  # noqa: BLE001 - a hostile header must not break the reader
        return None
    addresses = [addr for _name, addr in pairs if addr]
    if len(addresses) != 1 or any(not name and not addr for name, addr in pairs):
        return None
    return address_domain(addresses[0])
