"""Mail addresses: validation of every address that enters, and the codec of ours.

Our inbound addresses are ``LOCAL[+TAG]@DOMAIN``: the reply address carries a
party's token as TAG, the bounce address (the envelope sender of our mail, as
VERP) carries the key of the outgoing message. This module is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """An address that email-validator refuses; the message says why."""


def normalize_address(address: str) -> str:
    """Validate one bare address and return its comparable form (lower case)."""
    address = address.strip()
    if not address:
        raise AddressError("empty address")
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise AddressError(f"{address!r}: {exc}") from None
    return result.normalized.lower()


def try_normalize(address: str | None) -> str | None:
    """Like normalize_address, but None for anything that is not an address."""
    if not address:
        return None
    try:
        return normalize_address(address)
    except AddressError:
        return None


def header_address(value: str | None) -> str | None:
    """The normalised bare address in a From-like header value, or None."""
    if not value:
        return None
    try:
        _name, addr = parseaddr(str(value)[:2000])
    except Exception:  # noqa: BLE001 - a From header of nested comments can exhaust the parser
        return None
    return try_normalize(addr)


RecipientKind = Literal["reply", "bounce", "postmaster"]


@dataclass(frozen=True)
class Recipient:
    """What one of our inbound addresses names."""

    kind: RecipientKind
    tag: str | None


@dataclass(frozen=True)
class AddressBook:
    """The local parts we answer to at our inbound domain."""

    domain: str
    reply_local: str = "transfer"
    bounce_local: str = "bounce"

    def reply(self, token: str | None = None) -> str:
        return f"{self.reply_local}+{token}@{self.domain}" if token else f"{self.reply_local}@{self.domain}"

    def bounce(self, key: str) -> str:
        return f"{self.bounce_local}+{key}@{self.domain}"

    def parse(self, address: str) -> Recipient | None:
        """Classify an envelope recipient; None when it is not one of ours."""
        local, sep, domain = address.strip().strip("<>").rpartition("@")
        if not sep or domain.lower().rstrip(".") != self.domain:
            return None
        base, plus, tag = local.lower().partition("+")
        if base == "postmaster" and not plus:
            return Recipient("postmaster", None)
        if base == self.reply_local:
            return Recipient("reply", tag or None)
        if base == self.bounce_local:
            return Recipient("bounce", tag or None)
        return None

    def is_ours(self, address: str | None) -> bool:
        return bool(address) and self.parse(address or "") is not None
