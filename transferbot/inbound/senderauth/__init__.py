"""Sender authentication: is a reply really from its From domain?

A reply's token proves which transfer and party it answers; only sender
authentication proves who sent it. A reply counts only when its From domain
is authenticated:

* DMARC passes for the From domain (RFC 7489): a DKIM signature whose d=
  aligns with it verifies, or SPF passes for an envelope sender that aligns
  with it, under the domain's own alignment modes (adkim, aspf); or
* the domain publishes no DMARC record (neither at itself nor at its
  organisational domain), and a DKIM signature or SPF aligned with it
  (relaxed: the same organisational domain, from the Public Suffix List)
  passes. This lets a party whose domain publishes only SPF approve.

Anything else fails; the outcome keeps each mechanism's verdict, a sentence
for the operator (``why``) and one for the party's mail administrator
(``advice``). DNS trouble that could change the answer (timeout, SERVFAIL)
gives ``temperror``: the reply waits and is authenticated again, never
counted unauthenticated and never dropped.

Two deployments, chosen with ``[inbound] sender_auth``:

``"verify"`` (the default): transferbot is the MX. :func:`authenticate`
checks SPF (pyspf) for the envelope sender against the connecting address,
every DKIM signature (dkimpy) and the DMARC record, in process. DNS goes
through an async resolver (``[inbound] dns_resolvers``, default the
system's) with timeouts and a bounded TTL cache; the synchronous libraries
run on worker threads, so the event loop never waits for DNS.

``"trusted-relay"``: transferbot sits behind an MX (Postfix with OpenDKIM
and OpenDMARC, or rspamd) that authenticates mail and writes
``Authentication-Results``. :func:`trusted_relay` believes that header
only on messages that came from an address in ``[inbound] trusted_relays``,
and only the topmost one carrying ``trusted_authserv_id`` (Postfix's
``myhostname``); every other one, such as one a sender forged, is ignored.
Because only the topmost counts, the relay must write its results in one
header (rspamd does), or at least put its DMARC result on top. The relay
must also remove incoming headers that claim its authserv-id. With
rspamd, the ``milter_headers`` routine ``authentication-results`` does
that, but by default it skips local and authenticated clients
(``skip_local``/``skip_authenticated``): forged headers from them pass
through untouched, including from private-range addresses behind NAT. Set
both to false (or list ``authentication-results`` in ``local_headers`` and
``authenticated_headers``), and make SPF, DKIM and DMARC run for such
clients too (``check_local = true``, ``check_authed = true``): otherwise the
header says nothing about them.

``"off"`` checks nothing and needs ``allow_unauthenticated = true``: any
sender who learns a token can then approve in a party's name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transferbot.inbound.senderauth.dns import (
        CachingResolver,
        DnsPythonResolver,
        DnsTemporaryError,
        Resolver,
        StaticResolver,
        build_resolver,
    )
    from transferbot.inbound.senderauth.domains import aligned, from_domain, organizational_domain
    from transferbot.inbound.senderauth.relay import in_networks, trusted_relay
    from transferbot.inbound.senderauth.verdict import (
        ADVICE,
        AuthOutcome,
        DkimVerdict,
        DmarcVerdict,
        SpfVerdict,
        unauthenticated,
    )
    from transferbot.inbound.senderauth.verify import authenticate

# Imported on first use, so that the configuration (which validates resolver entries) does not load
# dnspython, dkimpy and pyspf for every CLI command.
_EXPORTS = {
    "ADVICE": "verdict",
    "AuthOutcome": "verdict",
    "CachingResolver": "dns",
    "DkimVerdict": "verdict",
    "DmarcVerdict": "verdict",
    "DnsPythonResolver": "dns",
    "DnsTemporaryError": "dns",
    "Resolver": "dns",
    "SpfVerdict": "verdict",
    "StaticResolver": "dns",
    "aligned": "domains",
    "authenticate": "verify",
    "build_resolver": "dns",
    "from_domain": "domains",
    "in_networks": "relay",
    "organizational_domain": "domains",
    "trusted_relay": "relay",
    "unauthenticated": "verdict",
}
__all__ = [
    "ADVICE",
    "AuthOutcome",
    "CachingResolver",
    "DkimVerdict",
    "DmarcVerdict",
    "DnsPythonResolver",
    "DnsTemporaryError",
    "Resolver",
    "SpfVerdict",
    "StaticResolver",
    "aligned",
    "authenticate",
    "build_resolver",
    "from_domain",
    "in_networks",
    "organizational_domain",
    "trusted_relay",
    "unauthenticated",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
