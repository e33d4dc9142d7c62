"""``sender_auth = "trusted-relay"``: believe the MX in front of us, and nobody else. Pure.

Anyone can write an Authentication-Results header, including one that
names our MX. So a header is believed only when the message came from a
configured relay address, and only the topmost header carrying the
configured authserv-id: the relay adds its own on top of whatever the
sender wrote (RFC 8601 section 5), so a lower one was already there when the
relay saw the message. Every other header is ignored. The rule is the one
``verify`` applies: dmarc=pass for the From domain; or, when the relay
reports no DMARC record (dmarc=none, or no dmarc result), an aligned
dkim=pass or an aligned spf=pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from transferbot.config import UNIX_PEER
from transferbot.inbound.senderauth.authresults import AuthResults, MethodResult, authserv_id_of, parse
from transferbot.inbound.senderauth.domains import address_domain, aligned, normalize_domain
from transferbot.inbound.senderauth.verdict import (
    AuthOutcome,
    DkimVerdict,
    DmarcVerdict,
    SpfVerdict,
    advice_for,
    refused,
)

MAX_HEADERS = 50
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NO_RECORD = ("none", "bestguesspass")  # bestguesspass: Gmail's "no record, but SPF/DKIM would have aligned"


def in_networks(client_ip: str, networks: Sequence[IpNetwork]) -> bool:
    """Whether ``client_ip`` (IPv4-mapped IPv6 counts as IPv4) lies in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(client_ip.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def _signer(res: MethodResult) -> str:
    return res.props.get("header.d") or address_domain(res.props.get("header.i", "")) or \
        normalize_domain(res.props.get("header.i", "").lstrip("@")) or ""


def _mailfrom_domain(res: MethodResult) -> str:
    value = res.props.get("smtp.mailfrom", "")
    if "@" in value:
        return address_domain(value) or ""
    return normalize_domain(value) or ""


def _fail(why: str, domain: str, authserv_id: str, **verdicts: object) -> AuthOutcome:
    key, advice, params = advice_for("relay-unauthenticated", domain)
    return AuthOutcome("fail", mode="trusted-relay", from_domain=domain, why=why, authserv_id=authserv_id,
                       advice=advice, advice_key=key, advice_params=params, **verdicts)  # type: ignore[arg-type]


def trusted_relay(headers: Sequence[str], *, client_ip: str, trusted_relays: Sequence[IpNetwork],
                  authserv_id: str, from_domain: str | None, unix_trusted: bool = False) -> AuthOutcome:
    """Judge a reply by the Authentication-Results ``headers`` (values, topmost first) our relay added.

    ``unix_trusted``: a message that came through our unix socket (``client_ip`` "unix") is the relay's;
    only what may open the socket (its mode and folder) can deliver there."""
    domain = normalize_domain(from_domain)
    if domain is None:
        return refused("the From line does not hold exactly one address with a domain, so no domain can be "
                       "authenticated", "from-address", mode="trusted-relay")
    trusted = authserv_id.strip().lower().rstrip(".")
    if not trusted or not (trusted_relays or unix_trusted):
        return _fail("trusted-relay mode needs inbound.trusted_relays and inbound.trusted_authserv_id", domain,
                     trusted)
    if not (unix_trusted and client_ip == UNIX_PEER) and not in_networks(client_ip, trusted_relays):
        ignored = f" ({len(headers)} Authentication-Results header(s) ignored)" if headers else ""
        return _fail(f"the message came from {client_ip}, which is not a trusted relay{ignored}", domain, trusted)
    header: AuthResults | None = None
    for value in headers[:MAX_HEADERS]:
        if authserv_id_of(value) == trusted:
            header = parse(value)
            break
    if header is None:
        return _fail(f"no Authentication-Results header from {trusted}", domain, trusted)
    if header.malformed:
        return _fail(f"the topmost Authentication-Results header from {trusted} cannot be read: "
                     f"{header.malformed}", domain, trusted)
    return _judge(header, domain, trusted)


def _judge(header: AuthResults, domain: str, trusted: str) -> AuthOutcome:
    sigs = tuple(DkimVerdict(_signer(r), r.props.get("header.s", ""), r.result, aligned(_signer(r), domain),
                             f"reported by {trusted}") for r in header.results if r.method == "dkim")
    spf_results = [r for r in header.results if r.method == "spf"]
    spf = None
    if spf_results:
        first = spf_results[0]
        spf = SpfVerdict(first.result, _mailfrom_domain(first), f"reported by {trusted}",
                         aligned(_mailfrom_domain(first), domain))
    dmarcs = [r for r in header.results if r.method == "dmarc"]
    mine = [r for r in dmarcs if normalize_domain(r.props.get("header.from")) == domain]
    others = [r for r in dmarcs if r not in mine]
    dmarc = None
    if mine or others:
        first = (mine or others)[0]
        dmarc = DmarcVerdict(first.result, first.props.get("policy.dmarc", ""),
                             normalize_domain(first.props.get("header.from")) or "", f"reported by {trusted}")
    verdicts = {"spf": spf, "dkim": sigs, "dmarc": dmarc}
    if any(r.result == "pass" for r in mine):
        return AuthOutcome("pass", mode="trusted-relay", from_domain=domain, authserv_id=trusted,
                           why=f"{trusted} reports dmarc=pass for {domain}", **verdicts)  # type: ignore[arg-type]
    if others:
        named = others[0].props.get("header.from") or "no domain"
        return _fail(f"{trusted} reports DMARC for {named}, not for the From domain {domain}", domain, trusted,
                     **verdicts)
    if any(r.result not in _NO_RECORD for r in mine):
        bad = next(r for r in mine if r.result not in _NO_RECORD)
        return _fail(f"{trusted} reports dmarc={bad.result} for {domain}", domain, trusted, **verdicts)
    passing = next((s for s in sigs if s.result == "pass" and s.aligned), None)
    if passing:
        return AuthOutcome("pass", mode="trusted-relay", from_domain=domain, authserv_id=trusted,
                           why=f"{trusted} reports no DMARC record for {domain} and an aligned dkim=pass by "
                               f"{passing.domain}", **verdicts)  # type: ignore[arg-type]
    if spf and spf.result == "pass" and spf.aligned:
        return AuthOutcome("pass", mode="trusted-relay", from_domain=domain, authserv_id=trusted,
                           why=f"{trusted} reports no DMARC record for {domain} and an aligned spf=pass for "
                               f"{spf.domain}", **verdicts)  # type: ignore[arg-type]
    facts = [f"dkim={s.result} by {s.domain or 'an unnamed signer'}" + ("" if s.aligned else " (unaligned)")
             for s in sigs]
    if spf:
        facts.append(f"spf={spf.result} for {spf.domain or 'no domain'}" + ("" if spf.aligned else " (unaligned)"))
    shown = ", ".join(facts) or "no DKIM or SPF result"
    return _fail(f"{trusted} reports no DMARC record for {domain} and no aligned pass: {shown}", domain, trusted,
                 **verdicts)
