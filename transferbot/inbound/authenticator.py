"""Who sent a reply: the configured sender authentication, run for one stored message.

The token in a reply proves which transfer and party it answers; only this proves who sent it
(transferbot.inbound.senderauth says how). It runs before the reader's chain, off the database
transaction, because it waits on DNS; the chain's ``authentication`` check then reads its outcome.
Mail that can never count is not authenticated at all: bounces (null sender), auto-replies, and
messages without a From address. A ``temperror`` outcome (DNS trouble that could change the answer)
sends the message back to wait, never to be counted unauthenticated.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from transferbot.config import UNIX_PEER, InboundConfig
from transferbot.inbound.reader.reading import Reading

if TYPE_CHECKING:
    from transferbot.inbound.senderauth import AuthOutcome, Resolver

log = logging.getLogger(__name__)


class Authenticator:
    def __init__(self, config: InboundConfig, resolver: Resolver | None = None) -> None:
        self.config = config
        self._injected = resolver
        self._resolver = resolver

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            from transferbot.inbound.senderauth import build_resolver

            self._resolver = build_resolver(self.config.dns_resolvers, self.config.dns_timeout_seconds)
        return self._resolver

    @staticmethod
    def needed(reading: Reading) -> bool:
        """Whether the outcome can matter: only mail that may record a decision is authenticated."""
        return reading.bounce is None and reading.auto_reply is None and bool(reading.from_addresses)

    async def check(self, raw: bytes, reading: Reading, *, mail_from: str, client_ip: str,
                    helo: str) -> AuthOutcome | None:
        """The outcome for one message (None when it cannot matter)."""
        from transferbot.inbound import senderauth

        if not self.needed(reading):
            return None
        mode = self.config.sender_auth
        domain = reading.from_domain
        if mode == "off":
            return senderauth.unauthenticated()
        if mode == "trusted-relay":
            return senderauth.trusted_relay(list(reading.auth_headers), client_ip=client_ip,
                                            trusted_relays=self.config.trusted_networks,
                                            authserv_id=self.config.trusted_authserv_id, from_domain=domain,
                                            unix_trusted=UNIX_PEER in self.config.trusted_relays)
        return await senderauth.authenticate(raw, mail_from=mail_from, client_ip=client_ip, helo=helo,
                                             from_domain=domain, resolver=self.resolver,
                                             timeout=self.config.dns_timeout_seconds)

    def check_now(self, raw: bytes, reading: Reading, *, mail_from: str, client_ip: str,
                  helo: str) -> AuthOutcome | None:
        """``check`` from synchronous code (the CLI): an event loop, and a resolver, of its own."""
        once = Authenticator(self.config, self._injected)
        return asyncio.run(once.check(raw, reading, mail_from=mail_from, client_ip=client_ip, helo=helo))
