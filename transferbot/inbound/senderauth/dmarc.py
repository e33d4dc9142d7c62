"""DMARC policy discovery (RFC 7489 6.6.3): the record that applies to a From domain.

The record is at ``_dmarc.<From domain>``, else at ``_dmarc.<organisational
domain>``. Records that do not start with ``v=DMARC1`` are not DMARC
records; several of them, or none, mean the domain publishes no policy.
Parsing is pure; discovery asks the async resolver.

Why not a library: authheaders' DMARC code takes a synchronous lookup that
swallows DNS errors (a timeout looks like "no record"), ships its own dated
suffix list and evaluates one SPF and one DKIM result only; checkdmarc is an
auditing tool on synchronous dnspython with network-bound dependencies. The
part we need is small, and a timeout must stay a timeout.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from transferbot.inbound.senderauth.dns import DnsTemporaryError, Resolver
from transferbot.inbound.senderauth.domains import Mode, normalize_domain, organizational_domain

log = logging.getLogger(__name__)

Policy = Literal["none", "quarantine", "reject"]
_POLICIES = ("none", "quarantine", "reject")
_VERSION = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)")


@dataclass(frozen=True)
class DmarcRecord:
    """The tags of a DMARC record that decide anything here."""

    policy: Policy
    subdomain_policy: Policy | None = None
    adkim: Mode = "r"
    aspf: Mode = "r"
    text: str = ""

    def policy_for(self, from_domain: str, record_domain: str) -> str:
        """``p``, or ``sp`` when the record was found at the organisational domain of a subdomain."""
        if record_domain and normalize_domain(from_domain) != record_domain and self.subdomain_policy:
            return self.subdomain_policy
        return self.policy


@dataclass(frozen=True)
class PolicyLookup:
    """What discovery found: a record (and where), none, or DNS trouble (try again later)."""

    status: Literal["found", "none", "temperror"]
    record: DmarcRecord | None = None
    record_domain: str = ""
    detail: str = ""


def is_dmarc_record(text: str) -> bool:
    return bool(_VERSION.match(text))


def parse_record(text: str) -> DmarcRecord | None:
    """The record's tags, or None when it is not a usable DMARC record (RFC 7489 6.3, 6.6.3 step 6)."""
    if not is_dmarc_record(text):
        return None
    tags: dict[str, str] = {}
    for part in text.split(";")[1:]:
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        if not tags.get("rua", "").strip():
            return None  # no valid p and no rua: as if there were no record
        policy = "none"  # a valid rua and a bad p: p=none (RFC 7489 6.6.3)
    sp = tags.get("sp", "").lower()
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    return DmarcRecord(
        policy=policy,  # type: ignore[arg-type]
        subdomain_policy=sp if sp in _POLICIES else None,  # type: ignore[arg-type]
        adkim="s" if adkim == "s" else "r",
        aspf="s" if aspf == "s" else "r",
        text=text,
    )


def _select(texts: list[str], where: str) -> tuple[DmarcRecord | None, str]:
    candidates = [t for t in texts if is_dmarc_record(t)]
    if not candidates:
        return None, f"no DMARC record at _dmarc.{where}"
    if len(candidates) > 1:
        return None, f"{len(candidates)} DMARC records at _dmarc.{where}: none applies (RFC 7489 6.6.3)"
    record = parse_record(candidates[0])
    if record is None:
        return None, f"the record at _dmarc.{where} has no valid p= tag: none applies"
    return record, ""


async def discover(from_domain: str, resolver: Resolver) -> PolicyLookup:
    """Find the DMARC record for ``from_domain``: at the domain itself, else at its organisational domain."""
    domain = normalize_domain(from_domain)
    if domain is None:
        return PolicyLookup("none", detail=f"{from_domain!r} is not a domain")
    org = organizational_domain(domain)
    details: list[str] = []
    for where in dict.fromkeys([domain] + ([org] if org and org != domain else [])):
        try:
            texts = await resolver.query(f"_dmarc.{where}", "TXT")
        except DnsTemporaryError as exc:
            log.info("DMARC record of %s: DNS trouble: %s", where, exc)
            return PolicyLookup("temperror", detail=str(exc))
        record, detail = _select(texts, where)
        if record is not None:
            return PolicyLookup("found", record, where, f"v=DMARC1 at _dmarc.{where}: p={record.policy}")
        details.append(detail)
        if any(is_dmarc_record(t) for t in texts):
            break  # several (or broken) records at the From domain stop discovery: no fallback to the org
    return PolicyLookup("none", detail="; ".join(details))
